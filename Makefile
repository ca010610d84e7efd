# The two commands of the README. Both set up a fresh machine first (scripts/setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup lint

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m thrifty.cli demo

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
