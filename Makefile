# The verbs a newcomer uses. `make up` and `make test` install whatever is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

MINISTACK_VERSION := 1.5.33
SAM_CLI_VERSION := 1.170.0
SCHEMATHESIS_VERSION := 4.32.5
LOCAL := .local
VENV := .venv
PY := $(VENV)/bin/python
MINISTACK_VENV := $(LOCAL)/ministack
SAM_VENV := $(LOCAL)/sam
SAM := $(SAM_VENV)/bin/sam
FUZZ_VENV := $(LOCAL)/fuzz
PIP_QUIET := --quiet --disable-pip-version-check
# What infra/stacks.py compiles template.yaml and stacks/*.yaml into (ADR 19).
COMPILED := .aws-sam/kumo
export SAM_CLI_TELEMETRY := 0

.PHONY: help up down status simulate rotate-keys test test-unit test-integration fuzz lint format openapi bench deploy tools clean

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

# The fuzzer has its own venv too: its pins (pytest, hypothesis) are not the project's.
$(FUZZ_VENV)/.installed:
	@echo "[kumo] installing schemathesis $(SCHEMATHESIS_VERSION)"
	@test -x $(FUZZ_VENV)/bin/python || "$$(infra/local/find-python312)" -m venv $(FUZZ_VENV)
	@$(FUZZ_VENV)/bin/pip install $(PIP_QUIET) "schemathesis==$(SCHEMATHESIS_VERSION)" 2> >(grep -v '^WARNING: Location' >&2)
	@touch $@

tools: $(VENV)/.installed $(MINISTACK_VENV)/.installed $(SAM_VENV)/.installed $(FUZZ_VENV)/.installed ## install the venvs, MiniStack, the SAM CLI and the fuzzer

up: tools ## run Kumo locally: start MiniStack, build, deploy, seed, print the URLs
	@$(PY) -m infra.local.stack up

down: $(VENV)/.installed ## stop the local stack (its data stays in .local/state)
	@$(PY) -m infra.local.stack down

status: $(VENV)/.installed ## is the local stack running? its stacks, dead letters, alarms and metrics
	@$(PY) -m infra.local.stack status

simulate: $(VENV)/.installed ## two simulated demo devices publishing over MQTT until Ctrl-C
	@$(PY) -m infra.local.simulator --demo --devices 2

rotate-keys: $(VENV)/.installed ## new signing keys, old ones kept until their tokens expire (STAGE=local by default)
	@$(PY) -m infra.keys rotate --stage $(or $(STAGE),local)

# Unit tests on two processes (pytest-xdist): each has its own moto account in memory, so
# they share nothing. Integration tests stay on one: each session deploys its own stack.
UNIT_WORKERS ?= 2

test: tools ## unit tests, then integration tests on a throw-away local stack
	@$(PY) -m pytest tests/unit -q -n $(UNIT_WORKERS)
	@$(PY) -m pytest tests/integration -q

test-unit: $(VENV)/.installed ## unit tests only (moto, no network; UNIT_WORKERS=0: in one process)
	@$(PY) -m pytest tests/unit -q -n $(UNIT_WORKERS)

test-integration: tools ## integration tests only
	@$(PY) -m pytest tests/integration -q

fuzz: tools ## schemathesis against the running stack (`make up` first), as a user and as anonymous
	@KUMO_ENDPOINTS=$${KUMO_ENDPOINTS:-$(CURDIR)/$(LOCAL)/endpoints.json} $(PY) -m pytest tests/integration/test_fuzz.py -q -s

# The stacks are linted as compiled (infra/stacks.py, ADR 19), after their resource counts.
# W3002: code paths are local until `sam build`; W3037: SAM's own policy templates name
# sqs:*MessageBatch actions that cfn-lint does not know.
lint: tools ## ruff, mypy, import-linter (the package graph), resources per stack, sam validate --lint, cfn-lint (offline)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy layers/common/kumo functions infra bench
	@PYTHONPATH=layers/common $(VENV)/bin/lint-imports --no-cache
	@$(PY) -m infra.stacks --count
	@$(SAM) validate --lint --template $(COMPILED)/template.yaml --region us-east-1
	@$(SAM_VENV)/bin/cfn-lint --ignore-checks W3002 W3037 -- $(COMPILED)/template.yaml $(COMPILED)/stacks/*.yaml

format: $(VENV)/.installed ## apply ruff's fixes and formatting
	@$(VENV)/bin/ruff check --fix .
	@$(VENV)/bin/ruff format .

openapi: $(VENV)/.installed ## regenerate docs/openapi.json and the copy the API serves
	@$(PY) -m infra.openapi --write

bench: tools ## print the figures: import times, API latency, scheduler tick, webhook and telemetry throughput, live push, cost, CSV export, picture work, upload to ready, chat fan-out, sketch load
	@$(PY) bench/cold_start.py
	@$(PY) bench/api_latency.py
	@$(PY) bench/webhooks.py
	@$(PY) bench/telemetry.py
	@$(PY) bench/exports.py
	@$(PY) bench/media.py
	@$(PY) bench/media_uploads.py
	@$(PY) bench/chat_fanout.py
	@$(PY) bench/sketch_load.py

deploy: tools ## deploy to AWS with your credentials (samconfig [default])
	@$(PY) -m infra.stacks
	@$(SAM) build --config-file $(CURDIR)/samconfig.toml --template-file $(COMPILED)/template.yaml
	@$(SAM) deploy --config-file $(CURDIR)/samconfig.toml

clean: ## remove build output (keeps .local/state, the local data)
	rm -rf .aws-sam
