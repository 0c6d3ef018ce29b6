# Every target works on a fresh clone: those that need the environment build it first (once).
# CI (.ci/run) calls the same targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Written by a successful install: `make test` installs when it is missing or older than
# pyproject.toml, and skips the install otherwise.
INSTALLED := $(VENV)/.installed

.PHONY: install test test-all lint format quickstart clean

install:  ## virtual environment + mattekit (editable) with dev tools; always reinstalls
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[dev]"
	touch $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(MAKE) --no-print-directory install

test: $(INSTALLED)  ## the unit tier and the contract tests over the registry (under 10 min on 2 cores)
	$(BIN)/pytest -n 2 -m "not slow" tests/unit tests/contract

test-all: $(INSTALLED)  ## every test (slow and integration ones too) and the walkthrough notebook: CI's
	$(BIN)/pytest -n 2 tests
	$(BIN)/pytest --nbmake notebooks

lint: $(INSTALLED)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(INSTALLED)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

quickstart: $(INSTALLED)  ## train the baseline on synthetic data (about 520 s of CPU time: 4-5 min on 2 idle cores)
	$(BIN)/mattekit fit --config configs/quickstart.yaml

clean:
	rm -rf runs .pytest_cache .ruff_cache
