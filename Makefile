# Two commands on a fresh machine with Python 3.11+ and make:
#   make demo   create .venv if missing, install cchet, run the end-to-end demo
#   make test   create .venv if missing, install cchet with its dev tools, run ruff, mypy and pytest
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck pytest bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "cchet needs Python 3.11 or newer, found " + sys.version.split()[0] + ": set PYTHON=python3.11 (or newer)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per install flavour, remade when pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,notebook]"
	@touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	$(BIN)/python examples/quickstart.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check cchet tests bench examples

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy cchet

pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -rs $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_seal.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
