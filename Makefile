# Two commands for a newcomer: `make run` (the whole system locally) and `make test` (everything).
# Both set up what they need from a fresh clone: the virtualenv, the packages, and dynalite (npm;
# without npm, `make test` still passes and the dynalite runs are skipped, saying why).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PORT   ?= 3000
# pytest-xdist workers: one per core by default (`make test TEST_WORKERS=0` runs in one process).
TEST_WORKERS ?= auto
XDIST  := -n $(TEST_WORKERS) --dist loadscope  # with the e2e tests as one scope: tests/conftest.py

.DEFAULT_GOAL := help
.PHONY: help setup dynalite lint typecheck test test-fast test-unit run bench openapi schema clean

help:
	@echo "make run    - run the whole system locally (API on http://127.0.0.1:$(PORT))"
	@echo "make test   - set up, then run every lint, type check and test"
	@echo "make test-unit - the unit and property tiers only (no servers, no subprocess stack)"
	@echo "make bench  - run the benchmarks and print their tables"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

setup: $(STAMP) dynalite

dynalite: $(STAMP)
	@$(BIN)/python -m local.engines fetch-dynalite --quiet

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: setup lint typecheck
	$(BIN)/pytest -p no:cacheprovider $(XDIST) --cov --cov-branch --cov-report=term

# The same tests without lint, types and coverage: for the edit-test loop.
test-fast: setup
	$(BIN)/pytest -p no:cacheprovider $(XDIST) -x -q

# The unit and property tiers: in-process, no engine servers, no stack subprocess, no browser
# (the store's properties on the engines are integration tests too, so they are left out).
# The edit-test loop: each property runs a tenth of its examples (tests/examples.py).
test-unit: $(STAMP)
	JOBSTATUS_QUICK_PROPERTIES=1 $(BIN)/pytest -p no:cacheprovider -n $(TEST_WORKERS) -q -m "(unit or property) and not integration"

run: setup
	$(BIN)/jobstatus local --port $(PORT)

bench: setup
	$(BIN)/python -m bench.projector
	$(BIN)/python -m bench.projector_cpu --freeze
	$(BIN)/python -m bench.coldstart --compiled --submit-steps 7
	$(BIN)/python -m bench.producers
	$(BIN)/python -m bench.api
	$(BIN)/python -m bench.webhooks
	$(BIN)/python -m bench.local_engines
	$(BIN)/python -m bench.live
	$(BIN)/python -m bench.restore

openapi: $(STAMP)
	$(BIN)/python -m api.openapi > openapi.json

schema: $(STAMP)
	$(BIN)/python -m jobstatus.schema

clean:
	rm -rf $(VENV) .coverage .hypothesis .aws-sam build *.egg-info

# `sam build` (BuildMethod: makefile) calls build-<LogicalId> with ARTIFACTS_DIR set: copy only
# our packages and install the runtime dependencies for Lambda's Python 3.12 on arm64.
# Only runtime code goes into a zip: the Lambda packages, never ops/ (operator tooling), local/,
# tests/ or bench/. `build-copy-%` is the copy step alone (tests/template/test_packaging.py runs it).
build-copy-%:
	mkdir -p "$(ARTIFACTS_DIR)"
	cp -R jobstatus producers projector api notifier webhooks "$(ARTIFACTS_DIR)/"
	find "$(ARTIFACTS_DIR)" -name __pycache__ -prune -exec rm -rf {} +

# Bytecode for Lambda's Python 3.12, whose package directory is read-only: without it every cold
# start compiles every module it imports (pydantic alone ~120 ms here). `unchecked-hash` pycs are
# used whatever the files' times in the zip. Skipped, saying so, where python3.12 is missing.
LAMBDA_PYTHON ?= python3.12
build-compile-%:
	@if $(LAMBDA_PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; then \
		$(LAMBDA_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash "$(ARTIFACTS_DIR)" >/dev/null; \
	else echo "$(LAMBDA_PYTHON) is not a Python 3.12: $* ships without bytecode (each cold start compiles it)"; fi

build-%:
	$(MAKE) --no-print-directory build-copy-$* ARTIFACTS_DIR="$(ARTIFACTS_DIR)"
	$(PYTHON) -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith(('boto3', 'botocore'))))" > "$(ARTIFACTS_DIR)/requirements.txt"
	$(PYTHON) -m pip install --quiet --target "$(ARTIFACTS_DIR)" --platform manylinux2014_aarch64 \
		--implementation cp --python-version 3.12 --only-binary=:all: -r "$(ARTIFACTS_DIR)/requirements.txt"
	$(MAKE) --no-print-directory build-compile-$* ARTIFACTS_DIR="$(ARTIFACTS_DIR)"
