# The two set-up commands in the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-system lint install install-dev system-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-dev: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'

demo: install
	$(BIN)/papers demo

# The static checks, configured in pyproject.toml; make stops at the first that fails.
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/deptry .

# Debian programs some tests drive (chromium, pgbouncer, redis-server), installed where root can.
system-packages:
	@scripts/system-packages

test: lint system-packages
	$(BIN)/pytest

# The slow system checks (kill -9 and PostgreSQL restarts under load, soak, schemathesis) as well.
test-system: install-dev system-packages
	$(BIN)/pytest tests/system --slow
