# Every target works on a fresh machine after `make install`; CI (.ci/run) calls the same targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint format quickstart clean

install:  ## virtual environment + mattekit (editable) with dev tools
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[dev]"

test:  ## unit + integration tests, and the walkthrough notebook
	$(BIN)/pytest -n 2 tests
	$(BIN)/pytest --nbmake notebooks

lint:
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format:
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

quickstart:  ## train the baseline on synthetic data (< 3 min on 2 CPU cores)
	$(BIN)/mattekit fit --config configs/quickstart.yaml

clean:
	rm -rf runs .pytest_cache .ruff_cache
