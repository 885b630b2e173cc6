# synack developer entry points.  Everything installs itself into .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP_RUN  := $(VENV)/.stamp-run
STAMP_TEST := $(VENV)/.stamp-test

.PHONY: demo test lint typecheck check bench clean venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PIP) install -q -e '.[cli]'
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PIP) install -q -e '.[cli,test,dev]'
	touch $@ $(STAMP_RUN)

venv: $(STAMP_RUN)

## demo: transfer data both ways over the simulated network and print the timeline
demo: $(STAMP_RUN)
	$(VENV)/bin/synack demo $(DEMO_ARGS)

## test: lint, type-check and run every test
test: $(STAMP_TEST) lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP_TEST)
	$(VENV)/bin/ruff check src tests

typecheck: $(STAMP_TEST)
	$(VENV)/bin/mypy

## bench: hot-path and simulator benchmarks; updates docs/benchmarks.md
bench: $(STAMP_TEST)
	$(PY) benchmarks/bench_core.py --write

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
