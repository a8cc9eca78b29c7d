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

.PHONY: run test test-fast lint bench venv clean docs docs-check docs-venv

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

# make test and make test-fast run on pytest-xdist workers, one per core of
# the 2-core CI machine; a file's tests stay on one worker, so its module
# fixtures are built once.
WORKERS ?= 2

## make test: the whole suite (what CI runs through .ci/run).
test: $(TESTS)
	$(PY) -m pytest -q -n $(WORKERS) --dist loadfile tests

## make test-fast: the tests not marked slow, which still run every module.
test-fast: $(TESTS)
	$(PY) -m pytest -q -n $(WORKERS) --dist loadfile -m "not slow" tests

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

# The docs have their own environment: the project's pins plus docs/requirements.txt
# (Sphinx, MyST-NB, furo), and docs/node_modules from docs/package-lock.json (MathJax,
# served with the pages; playwright-core for docs-check).
DOCS_VENV  ?= .venv-docs
DOCS_PY    := $(DOCS_VENV)/bin/python
DOCS_STAMP := $(DOCS_VENV)/.installed
DOCS_NODE  := docs/node_modules/.installed
DOCS_HTML  := docs/_build/html
CHROMIUM   ?= /usr/bin/chromium

docs-venv: $(DOCS_STAMP) $(DOCS_NODE)

$(DOCS_STAMP): requirements.txt docs/requirements.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r docs/requirements.txt
	$(DOCS_PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(DOCS_STAMP)

$(DOCS_NODE): docs/package.json docs/package-lock.json
	cd docs && npm ci --no-audit --no-fund --loglevel=error
	touch $(DOCS_NODE)

## make docs: the site in docs/_build/html, offline, warnings as errors; notebooks are
## executed (and cached in docs/_build/.jupyter_cache until their code changes).
docs: $(DOCS_STAMP) $(DOCS_NODE)
	$(DOCS_PY) -m sphinx -W --keep-going -q -b html docs $(DOCS_HTML)
	@echo "docs: $(DOCS_HTML)/index.html"

## make docs-check: every built page in headless Chromium; fails on a JavaScript error,
## a failed request, a broken internal link or anchor, or untypeset math.
docs-check: $(DOCS_NODE)
	@test -f $(DOCS_HTML)/index.html || { echo "error: $(DOCS_HTML) is not built; run make docs first"; exit 1; }
	@test -x $(CHROMIUM) || { echo "error: $(CHROMIUM) not found; install it (apt-get install chromium) or pass CHROMIUM=/path/to/chromium"; exit 1; }
	node docs/check_pages.mjs --site $(DOCS_HTML) --chromium $(CHROMIUM) --screenshots docs/_build/screenshots

clean:
	rm -rf $(VENV) $(DOCS_VENV) *.egg-info docs/_build docs/node_modules docs/api/_generated
