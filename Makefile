# Every target builds its own virtual environment from requirements.txt + setup.cfg.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast bench venv clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

## make run: the main job, offline, on the embedded default dataset.
run: $(STAMP)
	$(PY) -m experiments.main_job

## make test: the whole suite (what CI runs through .ci/run).
test: $(STAMP)
	$(PY) -m pytest -q tests

## make test-fast: skip the tests marked slow.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

## make bench: the CPU benchmark (benchmarks/cpu.py), with the optional peers installed.
bench: $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 || echo "torch peer not installed; its rows will be skipped"
	$(PY) -m benchmarks.cpu

clean:
	rm -rf $(VENV) *.egg-info
