# The two commands in the README: `make lab` (the main job) and `make test`.
# Both create .venv if it is missing and install the kit into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch 2.13.0 is the local CPU build on the course machines; nothing may ask for a newer one.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
SEEDS  ?= 0-2
RUNS   := runs/reference

.PHONY: lab test test-fast bench runs notebooks study clean browser-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,lab]" "$(TORCH)"
	touch $@

## lab: install, make sure the reference runs exist, start JupyterLab on notebooks/
lab: runs
# JupyterLab refuses to start as root unless told to (containers and workshop VMs run as root).
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

## runs: train (or resume, or reuse) the reference runs the notebooks open
runs: $(STAMP)
	$(BIN)/vestige train --preset reference --seeds $(SEEDS) --out $(RUNS) --resume
	$(BIN)/vestige analyze $(RUNS)

## test: the whole suite, slow tests included
test: $(STAMP) sandbox-deps browser-deps
	$(BIN)/python -m pytest -q -ra

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

## study: the study the course cites (report in course/study/): 20 unseen reference seeds with
## every suppression condition, and the control preset on 5 more; finished runs are reused
study: $(STAMP)
	$(BIN)/vestige study --preset reference --seeds 1000-1019 --control-seeds 2000-2004 \
	  --out runs/study --report course/study --search course/study/search.jsonl

## browser-deps: Debian's chromium for the real-browser test and bench (apt; idempotent)
browser-deps:
	bash scripts/browser/install-chromium.sh

clean:
	rm -rf $(VENV) .pytest_cache
