# One command runs the system (make run), one runs every test (make test). Both set up what they need.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# every folder under services/ (crm_common and each service) and the gateway
PACKAGES := $(patsubst %/pyproject.toml,-e %,$(wildcard services/*/pyproject.toml)) -e gateway
STAMP := $(VENV)/.installed
# `make run REPLICAS=2`: that many processes of every service and of the gateway (PostgreSQL only)
REPLICAS ?=
RUN_ARGS := $(if $(REPLICAS),--replicas $(REPLICAS))

.PHONY: venv tools run demo test test-unit test-integration test-e2e fuzz bench lint migrate clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt services/*/pyproject.toml gateway/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -r requirements-dev.txt -c constraints.txt
	$(PIP) install --quiet --no-build-isolation --no-deps --config-settings editable_mode=compat $(PACKAGES)
	touch $(STAMP)

venv: $(STAMP)

# pg_dump/pg_restore and rclone for the backup service (Debian packages), installed if missing
tools:
	scripts/ensure_tools.sh

run: venv tools
	$(PY) scripts/run.py $(RUN_ARGS)

demo: venv tools
	$(PY) scripts/run.py --demo $(RUN_ARGS)

migrate: venv
	$(PY) -m crm_common.migrate

test: venv
	scripts/ensure_tools.sh --test
	scripts/ensure_infra.sh
	$(PY) -m pytest tests

test-unit: venv
	$(PY) -m pytest tests/unit tests/contracts

test-integration: venv
	scripts/ensure_tools.sh --test
	scripts/ensure_infra.sh
	$(PY) -m pytest tests/integration

test-e2e: venv
	scripts/ensure_tools.sh --test
	scripts/ensure_infra.sh
	$(PY) -m pytest tests/e2e

# schemathesis with every check and many examples per operation against a CRM of its own (FUZZ_ARGS="--examples 500")
fuzz: venv
	scripts/ensure_infra.sh
	$(PY) scripts/fuzz.py $(FUZZ_ARGS)

bench: venv
	scripts/ensure_tools.sh
	scripts/ensure_infra.sh
	$(PY) -m bench
	$(PY) -m bench.telephony

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache
