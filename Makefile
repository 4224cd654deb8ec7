# Two entry points, each doing all the set-up it needs on a fresh machine:
#   make demo   - a real DARTS search on the offline digits data, then compile the result
#   make test   - lint (ruff check), types (mypy), then the test suite; stops at the first failure
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/genolang search specs/spaces/darts_cnn.geno --out found.geno --force
	$(BIN)/genolang compile found.geno --network small

test: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/parse_bench.py
