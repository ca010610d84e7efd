# The two commands of the README (demo, test), lint and the documentation site. Each sets up a
# fresh machine first (scripts/setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup lint docs

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m thrifty.cli demo

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

# the documentation site (mkdocs.yml, docs/) into site/; any warning fails the build
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site
