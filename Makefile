# Every target builds the virtual environment it needs in .venv, from exact
# pins: the core (requirements.txt) for run, plus requirements-test.txt (the
# tfds extra, pytest) for the tests, plus requirements-dev.txt (ruff, mypy,
# pre-commit) for lint. Each layer has its own stamp, so `make run` never
# installs TensorFlow and a changed lock reinstalls only what depends on it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q --disable-pip-version-check
CORE   := $(VENV)/.installed-core
TESTS  := $(VENV)/.installed-test
DEV    := $(VENV)/.installed-dev

.PHONY: run test test-fast lint bench venv clean

venv: $(CORE)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(CORE): requirements.txt setup.cfg pyproject.toml | $(PY)
	$(PIP) -r requirements.txt
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@

$(TESTS): requirements-test.txt $(CORE)
	$(PIP) -r requirements-test.txt
	touch $@

$(DEV): requirements-dev.txt $(CORE)
	$(PIP) -r requirements-dev.txt
	touch $@

## make run: the main job, offline, on the embedded default dataset.
run: $(CORE)
	$(PY) -m experiments.main_job

## make test: the whole suite (what CI runs through .ci/run).
test: $(TESTS)
	$(PY) -m pytest -q tests

## make test-fast: skip the tests marked slow; every module is still covered.
test-fast: $(TESTS)
	$(PY) -m pytest -q -m "not slow" tests

## make lint: the formatter check, the linter and the type checker (CI runs
## it before the tests; .pre-commit-config.yaml runs the same on commit).
lint: $(DEV)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## make bench: the CPU benchmark (benchmarks/cpu.py), with the optional peers installed.
bench: $(CORE)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 || echo "torch peer not installed; its rows will be skipped"
	$(PY) -m benchmarks.cpu

clean:
	rm -rf $(VENV) *.egg-info
