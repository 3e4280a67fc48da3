# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LINT_PATHS := gateway schemas tests deploy
RUFF_OPTS := --line-length 120 --target-version py311

.PHONY: install run test unit integration lint format clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: install
	$(PY) -m gateway.demo

test: lint
	$(PY) -m pytest -q

unit: install
	$(PY) -m pytest -q tests/unit

integration: install
	$(PY) -m pytest -q tests/integration

lint: install
	$(VENV)/bin/ruff check $(RUFF_OPTS) $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(RUFF_OPTS) $(LINT_PATHS)
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix $(RUFF_OPTS) $(LINT_PATHS)
	$(VENV)/bin/ruff format $(RUFF_OPTS) $(LINT_PATHS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
