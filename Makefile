# The two commands of the README: `make run` and `make test`. Both create the virtual
# environment first when it is missing or older than pyproject.toml.
#
# durable-rules (the second engine used by `dispatcher verify`) builds from source and
# imports on CPython 3.11 and 3.12 only, so the environment uses one of those.

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,durable]'
	touch $(STAMP)

setup: $(STAMP)

# The main job on the embedded default: the example rules, checked and put to work.
run: setup
	$(BIN)/dispatcher db upgrade
	$(BIN)/dispatcher validate rules
	$(BIN)/dispatcher explain --all-types --assist --accelerate --consent marketing=opted_in \
		--jurisdiction US-TX --date 2026-12-05 --time 14:00 --reply-role transactional
	$(BIN)/dispatcher explain --type promotion --consent marketing=opted_in \
		--jurisdiction US-FL --date 2026-12-03 --time 20:30

lint: setup
	$(BIN)/ruff check dispatcher tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/engine_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
