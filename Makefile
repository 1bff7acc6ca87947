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

.PHONY: lab test test-fast bench runs notebooks study clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,lab]" "$(TORCH)"
	touch $@

## lab: install, make sure the reference runs exist, start JupyterLab on notebooks/
lab: runs
	$(BIN)/jupyter lab --notebook-dir=notebooks

## runs: train (or resume, or reuse) the reference runs the notebooks open
runs: $(STAMP)
	$(BIN)/vestige train --preset reference --seeds $(SEEDS) --out $(RUNS) --resume
	$(BIN)/vestige analyze $(RUNS)

## test: the whole suite, slow tests included
test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

## notebooks: regenerate notebooks/ and course/solutions/ from the sources in course/
notebooks: $(STAMP)
	$(BIN)/vestige course build

## bench: speed and memory figures, as ratios against baselines measured in the same run
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_explorer.py

## study: the 10-seed reference study cited by the course (report in course/study/)
study: $(STAMP)
	$(BIN)/vestige study --preset reference --seeds 0-9 --out runs/study --report course/study

clean:
	rm -rf $(VENV) .pytest_cache
