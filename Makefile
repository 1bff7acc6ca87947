# The two commands in the README: `make lab` (the main job) and `make test`.
# Both create .venv if it is missing and install the kit into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch 2.13.0 is the local CPU build on the course machines; nothing may ask for a newer one.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: lab test test-fast bench runs notebooks study clean browser-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# A room with no network: `make wheelhouse` (run where there is network) writes every wheel
# the install below needs into $(WHEELHOUSE)/. While that folder holds wheels, the install takes
# them from there and asks no index (pip --no-index); without it, it installs from PyPI.
WHEELHOUSE ?= wheelhouse
PIP_FROM   := $(if $(wildcard $(WHEELHOUSE)/*.whl),--no-index --find-links $(WHEELHOUSE))

$(STAMP): pyproject.toml | $(BIN)/python
	$(if $(PIP_FROM),@echo "installing from $(WHEELHOUSE)/ only (pip --no-index)")
	$(BIN)/python -m pip install -q $(PIP_FROM) --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_FROM) "$(TORCH)"
	$(BIN)/python -m pip install -q $(PIP_FROM) -e ".[dev,lab]" "$(TORCH)"
	touch $@

## lab: install, make sure the reference runs exist, start JupyterLab on notebooks/
lab: runs
# JupyterLab refuses to start as root unless told to (containers and workshop VMs run as root).
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

## runs: make (or reuse) every run, analysis and fork the notebooks open, by running each
## solution notebook once, and once more per parameter set its checks module grades on (the
## notebooks decide what they open; binder/postBuild does the same), and the tiny seeds
## grading 00_welcome and 05_training picks from
runs: $(STAMP)
	$(BIN)/python scripts/precompute.py
	$(BIN)/vestige train --preset tiny --seeds 0-3 --out runs/welcome-tiny --resume --quiet
	$(BIN)/vestige train --preset tiny --seeds 0-3 --out runs/training-tiny --resume --quiet

## test: the whole suite, slow tests included, on TEST_WORKERS processes (pytest-xdist; each
## test on one torch thread). It prints the slowest tests, to see what the CI time goes to.
TEST_WORKERS ?= 2
test: $(STAMP) sandbox-deps browser-deps lint
	$(BIN)/python -m pytest -q -ra -n $(TEST_WORKERS) --durations=20

## lint: ruff's checks and formatting (pinned in the dev extra, so every machine agrees)
.PHONY: lint
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## sandbox-deps: bubblewrap, the sandbox `vestige course grade` runs submissions in (apt, as root or via sudo)
.PHONY: sandbox-deps
sandbox-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq bubblewrap; }
	@command -v bwrap >/dev/null 2>&1 || { echo "sandbox-deps: bubblewrap (bwrap) is required" >&2; exit 1; }
	@bwrap --ro-bind / / --unshare-all --unshare-user --die-with-parent true 2>/dev/null || \
	  echo "sandbox-deps: warning: bwrap cannot create namespaces here (user namespaces off?); grading will report it" >&2

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

## notebooks: regenerate notebooks/ and course/solutions/ from the sources in course/
notebooks: $(STAMP)
	$(BIN)/vestige course build

## bench: speed and memory figures, as ratios against baselines measured in the same run
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_explorer.py

## study: the study the course cites (report in course/study/), pre-registered in
## course/study/preregistration.md (its deviations are listed there): the detector on the 20
## report seeds of the reference and the 20 of its control, and the first 4 reference seeds
## retrained with two threads and with perturbed initial weights. The suppression conditions
## are the suppression targets' (reports in its subfolders, each paired with unchanged runs of
## its own seeds: `make suppression` with these runs, the whole and half windows with
## `make numerics-report`'s). Finished runs are reused; from
## nothing 54 min on two cores (measured 2026-12-04 at 35b36bd, `time make study` in a clean clone)
study: $(STAMP)
	$(BIN)/vestige study --preset reference --seeds 3000-3019 --control-seeds 4000-4019 \
	  --conditions '' --perturbed-seeds 3000-3003 \
	  --out runs/study --report course/study --search course/study/search.jsonl

## study-report: course/study/report.md written again from its summary.json, results.json,
## search log and the reports beside it (numerics batches, verify.json, the suppression reports'
## summaries, which its literature section cites), after any of them or the report's code
## changes; trains nothing, seconds
.PHONY: study-report
study-report: $(STAMP)
	$(STUDY_REPORT)
STUDY_REPORT = $(BIN)/vestige report course/study --search course/study/search.jsonl

## suppression: the 20 reference report seeds trained again with the crutch's attention head held
## at its mean for [0, T) (T: the seed's copy transition) and for the whole run, and with the
## target neuron and a never-needed control neuron held for [0, T) (vestige.conditions), and the
## first 10 trained on a finite training set of 2,000 sequences, unchanged and under the
## selectivity regulariser at alpha -1, -0.3, +0.3; report in course/study/suppression/. Reuses
## the study's runs; 80 + 40 trainings, about 50 + 45 min on two cores (measured: 64 of the 80 in
## 39 min; the 40 with their 10 analyses in about 45 min beside other jobs)
.PHONY: suppression
suppression: $(STAMP)
	$(BIN)/vestige study --preset reference --seeds 3000-3019 \
	  --conditions head-1T,head-whole,neuron-1T,control-1T --pool 2000 --pool-seeds 3000-3009 \
	  --out runs/study --report course/study/suppression
	$(STUDY_REPORT)  # the study's report cites it

## suppression-whole: report seeds 3004-3019 trained again with the target neuron and a control
## neuron held at their mean for the whole run, against their unchanged runs from numerics-report
## (trained on the same machine); report in course/study/suppression_whole/ (22 min on two
## cores, measured)
.PHONY: suppression-whole
suppression-whole: $(STAMP)
	$(BIN)/vestige study --preset reference --seeds 3004-3019 --conditions neuron-whole,control-whole \
	  --out runs/numerics-report --report course/study/suppression_whole
	$(STUDY_REPORT)  # the study's report cites it

## suppression-half: report seeds 3004-3019 trained again with the crutch's head and the target
## neuron held at their mean for [0, T/2) (a brief early window, as Chen et al. 2024), against
## their unchanged runs from numerics-report; report in course/study/suppression_half/ (20 min
## on two cores, measured)
.PHONY: suppression-half
suppression-half: $(STAMP)
	$(BIN)/vestige study --preset reference --seeds 3004-3019 --conditions head-0.5T,neuron-0.5T \
	  --out runs/numerics-report --report course/study/suppression_half
	$(STUDY_REPORT)  # the study's report cites it

## verify: the study's verdicts recomputed by course/study/verify.py (plain hooks and numpy,
## not the detector's code) on the study's reference and control runs
.PHONY: verify
verify: $(STAMP)
	$(BIN)/python course/study/verify.py runs/study/reference/base runs/study/control/base

## verify-fresh: the same check on the pre-registered fresh seeds, never opened while tuning
## (reference 5000-5009, control 6000-6009), trained first (finished runs are reused; from
## nothing about 25 min of training on one core), into course/study/verify.json and the report
.PHONY: verify-fresh
verify-fresh: $(STAMP)
	$(BIN)/vestige train --preset reference --seeds 5000-5009 --out runs/verify/reference --resume --quiet
	$(BIN)/vestige train --preset control --seeds 6000-6009 --out runs/verify/control --resume --quiet
	$(BIN)/python course/study/verify.py runs/verify/reference runs/verify/control \
	  --json course/study/verify.json
	$(STUDY_REPORT)

# keep_numerics SUMMARY,FILE: the seeds and numerics of a study's summary.json, into FILE whole
define keep_numerics
	$(BIN)/python -c 'import json, sys; s = json.load(open(sys.argv[1])); \
	  print(json.dumps({"seeds": s["seeds"], "numerics": s["numerics"]}, indent=1))' \
	  $(1) > $(2).partial
	mv $(2).partial $(2)
endef

## numerics-fresh: the study's two perturbations (two torch threads; initial weights + 1e-6
## noise) of the fresh reference seeds, judged against their unchanged runs from verify-fresh
## (linked, not trained again), into course/study/numerics_fresh.json and the report (75 min
## on two cores, measured before two-thread jobs ran alone: they shared the cores)
.PHONY: numerics-fresh
numerics-fresh: $(STAMP)
	$(BIN)/vestige train --preset reference --seeds 5000-5009 --out runs/verify/reference --resume --quiet
	mkdir -p runs/numerics-fresh/reference/base
	for s in $$(seq 5000 5009); do \
	  ln -sfn ../../../verify/reference/seed-$$s runs/numerics-fresh/reference/base/seed-$$s; done
	$(BIN)/vestige study --preset reference --seeds 5000-5009 --conditions '' \
	  --perturbed-seeds 5000-5009 --out runs/numerics-fresh --report runs/numerics-fresh/report --quiet
	$(call keep_numerics,runs/numerics-fresh/report/summary.json,course/study/numerics_fresh.json)
	$(STUDY_REPORT)

## numerics-report: report seeds 3004-3019 retrained on this machine, unchanged and as the
## study's two perturbations (the study itself perturbs 3000-3003); their seeds and numerics go
## to course/study/numerics_report.json and the report counts all 20 report seeds (72 min on two
## cores, measured: 48 trainings, the two-thread ones alone on the cores)
.PHONY: numerics-report
numerics-report: $(STAMP)
	$(BIN)/vestige study --preset reference --seeds 3004-3019 --conditions '' \
	  --perturbed-seeds 3004-3019 --out runs/numerics-report --report runs/numerics-report/report --quiet
	$(call keep_numerics,runs/numerics-report/report/summary.json,course/study/numerics_report.json)
	$(BIN)/python course/study/replicate.py runs/numerics-report/reference/base
	$(STUDY_REPORT)

## browser-deps: Debian's chromium for the real-browser test and bench (apt; idempotent)
browser-deps:
	bash scripts/browser/install-chromium.sh

clean:
	rm -rf $(VENV) .pytest_cache

## wheelhouse: every wheel `make lab` and `make test` install (CPU torch, pip and setuptools
## included) into $(WHEELHOUSE)/, for a room with no network; copy the folder with the checkout
.PHONY: wheelhouse
wheelhouse: | $(BIN)/python
	rm -rf $(WHEELHOUSE).partial && mkdir -p $(WHEELHOUSE).partial
	printf '*\n' > $(WHEELHOUSE).partial/.gitignore
	$(BIN)/python -m pip wheel -q --wheel-dir $(WHEELHOUSE).partial \
	  $(if $(wildcard $(WHEELHOUSE)/*.whl),--find-links $(WHEELHOUSE)) \
	  "$(TORCH)" ".[dev,lab]" pip "setuptools>=77"
	rm -f $(WHEELHOUSE).partial/vestige-*.whl
	$(BIN)/python scripts/binder/wheelhouse_check.py $(WHEELHOUSE).partial "$(TORCH)"
	rm -rf $(WHEELHOUSE) && mv $(WHEELHOUSE).partial $(WHEELHOUSE)
	@echo "$(WHEELHOUSE)/: $$(ls $(WHEELHOUSE)/*.whl | wc -l) wheels, $$(du -sh $(WHEELHOUSE) | cut -f1)"

## binder-check: build binder/ in a fresh environment the way repo2docker does (runtime.txt,
## requirements.txt, postBuild) in $(BINDER_DIR), then run every notebook, solved and unsolved,
## on 1 CPU under a 2 GB memory limit; fails over 2 GB, under 25% headroom, or on a 10-minute
## silent stretch. BINDER_ARGS: e.g. --reuse (keep the built environment and runs, copy the
## repository in again), --only 00_welcome
BINDER_DIR  ?= build/binder
BINDER_ARGS ?=
.PHONY: binder-check
binder-check:
	$(PYTHON) scripts/binder/check.py --dir $(BINDER_DIR) --torch "$(TORCH)" $(BINDER_ARGS)
