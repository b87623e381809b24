# The two commands of the README: `make run` and `make test`. Both create the virtual
# environment first when it is missing or older than pyproject.toml.
#
# durable-rules (the second engine used by `dispatcher verify`) builds from source and
# imports on CPython 3.11 and 3.12 only, so the environment uses one of those.

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench bench-suite clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,durable]'
	touch $(STAMP)

setup: $(STAMP)

# The main job on the embedded default: a working dispatcher with a demo business, its
# numbers and the simulator, served until Ctrl-C. `make run RUN_ARGS=--check` drives it
# through HTTP once, prints the outcomes and exits (0 when they are as the rules say).
RUN_ARGS ?=
run: setup
	$(BIN)/dispatcher db upgrade
	$(BIN)/dispatcher validate rules
	$(BIN)/dispatcher serve --demo $(RUN_ARGS)

lint: setup
	$(BIN)/ruff check dispatcher tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/engine_bench.py

# Every benchmark, one after the other, bounded; writes docs/bench-summary.md.
bench-suite: setup
	$(BIN)/python bench/suite.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
