# Coach: `make run` (set-up + app on embedded PostgreSQL and Valkey), `make test` (set-up + whole suite),
# `make bench` (set-up + every benchmark of bench/; figures go to docs/PERFORMANCE.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENDOR := coach/static/vendor

.PHONY: run test bench setup clean-instance

run: setup
	$(PY) -m coach.devstack run

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# The benchmarks need nothing beyond the app's own dependencies (the load generator is stdlib only).
bench: setup
	$(PY) -m bench all

setup: $(VENV)/.installed $(VENDOR)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# npm's postinstall (package.json) copies htmx into coach/static/vendor; a PaaS build runs the same.
$(VENDOR)/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

clean-instance:
	rm -rf instance/postgres instance/valkey
