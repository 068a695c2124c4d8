# The verbs a newcomer uses. `make up` and `make test` install whatever is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

MINISTACK_VERSION := 1.5.33
SAM_CLI_VERSION := 1.170.0
LOCAL := .local
VENV := .venv
PY := $(VENV)/bin/python
MINISTACK_VENV := $(LOCAL)/ministack
SAM_VENV := $(LOCAL)/sam
SAM := $(SAM_VENV)/bin/sam
PIP_QUIET := --quiet --disable-pip-version-check
export SAM_CLI_TELEMETRY := 0

.PHONY: help up down status simulate test test-unit test-integration lint format openapi bench deploy tools clean

help: ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.lock
	@echo "[kumo] installing the project venv (Python 3.12)"
	@test -x $(PY) || "$$(infra/local/find-python312)" -m venv $(VENV)
	@$(PY) -m pip install $(PIP_QUIET) --no-deps -r requirements.lock 2> >(grep -v '^WARNING: Location' >&2)
	@touch $@

# MiniStack pins botocore exactly, so it lives in a venv of its own (docs/adr/0002).
$(MINISTACK_VENV)/.installed:
	@echo "[kumo] installing MiniStack $(MINISTACK_VERSION)"
	@test -x $(MINISTACK_VENV)/bin/python || "$$(infra/local/find-python312)" -m venv $(MINISTACK_VENV)
	@$(MINISTACK_VENV)/bin/pip install $(PIP_QUIET) "ministack[full]==$(MINISTACK_VERSION)" 2> >(grep -v '^WARNING: Location' >&2)
	@touch $@

$(SAM_VENV)/.installed:
	@echo "[kumo] installing the SAM CLI $(SAM_CLI_VERSION)"
	@test -x $(SAM_VENV)/bin/python || "$$(infra/local/find-python312)" -m venv $(SAM_VENV)
	@$(SAM_VENV)/bin/pip install $(PIP_QUIET) "aws-sam-cli==$(SAM_CLI_VERSION)" 2> >(grep -v '^WARNING: Location' >&2)
	@touch $@

tools: $(VENV)/.installed $(MINISTACK_VENV)/.installed $(SAM_VENV)/.installed ## install the venvs, MiniStack and the SAM CLI

up: tools ## run Kumo locally: start MiniStack, build, deploy, seed, print the URLs
	@$(PY) -m infra.local.stack up

down: $(VENV)/.installed ## stop the local stack (its data stays in .local/state)
	@$(PY) -m infra.local.stack down

status: $(VENV)/.installed ## is the local stack running?
	@$(PY) -m infra.local.stack status

simulate: $(VENV)/.installed ## two simulated demo devices publishing over MQTT until Ctrl-C
	@$(PY) -m infra.local.simulator --demo --devices 2

test: tools ## unit tests, then integration tests on a throw-away local stack
	@$(PY) -m pytest tests/unit -q
	@$(PY) -m pytest tests/integration -q

test-unit: $(VENV)/.installed ## unit tests only (moto, no network)
	@$(PY) -m pytest tests/unit -q

test-integration: tools ## integration tests only
	@$(PY) -m pytest tests/integration -q

lint: tools ## ruff, mypy, import-linter (the package graph), sam validate --lint, cfn-lint (offline)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy layers/common/kumo functions infra bench
	@PYTHONPATH=layers/common $(VENV)/bin/lint-imports --no-cache
	@$(SAM) validate --lint --template template.yaml --region us-east-1
	@$(SAM_VENV)/bin/cfn-lint template.yaml

format: $(VENV)/.installed ## apply ruff's fixes and formatting
	@$(VENV)/bin/ruff check --fix .
	@$(VENV)/bin/ruff format .

openapi: $(VENV)/.installed ## regenerate docs/openapi.json and the copy the API serves
	@$(PY) -m infra.openapi --write

bench: tools ## print the figures: import times, API latency, scheduler tick, webhook and telemetry throughput, live push, cost, CSV export
	@$(PY) bench/cold_start.py
	@$(PY) bench/api_latency.py
	@$(PY) bench/webhooks.py
	@$(PY) bench/telemetry.py
	@$(PY) bench/exports.py

deploy: $(SAM_VENV)/.installed ## deploy to AWS with your credentials (samconfig [default])
	@$(SAM) build
	@$(SAM) deploy

clean: ## remove build output (keeps .local/state, the local data)
	rm -rf .aws-sam
