# The two commands of the README, and a few more. Each creates the virtual
# environment it needs, so they work on a fresh clone.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench bench-quick lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python cli.py run --concurrency 64 --demo

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

# The benchmarks compare the engine with peer clients, so they need the bench extra.
# The full run takes about forty minutes and writes benchmarks/RESULTS.md.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m benchmarks --quick --results $${TMPDIR:-/tmp}/autosep-bench-quick.md

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
