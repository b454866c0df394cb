# sessionwarden — developer entry points. Each target sets up what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
DEMO   := data/demo/events.jsonl
OUT    ?= out/demo
CHROMIUM ?= /usr/bin/chromium

.PHONY: help venv run test unit lint typecheck kafka-fetch browser kafka-up kafka-down keycloak-fetch keycloak-up keycloak-down bench bench-quick bench-enforce bench-evaluation demo-data clean

help:
	@echo "make run    - replay the bundled demo log (no Kafka) and print the summary"
	@echo "make test   - lint, type-check and run the whole test suite (starts a local Kafka)"
	@echo "make bench  - benchmarks -> bench/results.json and BENCHMARKS.md"
	@echo "make kafka-up / kafka-down - a local single-node Kafka for development"
	@echo "make keycloak-up / keycloak-down - a local Keycloak (admin/admin) for trying enforcement"
	@echo "make bench-evaluation - detection quality on the labelled corpus, before/after -> bench/evaluation_results.json"
	@echo "make bench-enforce - enforcer benchmark on a local Kafka + Keycloak -> bench/out/enforce.json"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/sessionwarden replay $(DEMO) --out $(OUT) --report

lint: venv
	$(BIN)/ruff check detectors worker tests scripts bench data/generate_events.py data/generate_labelled.py
	$(BIN)/mypy

kafka-fetch:
	$(PYTHON) scripts/kafka_local.py fetch

keycloak-fetch:
	$(PYTHON) scripts/keycloak_local.py fetch

# Debian's Chromium for the report's browser test; installed only when missing.
browser:
	@test -x $(CHROMIUM) || { echo "installing chromium (Debian package)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: venv kafka-fetch keycloak-fetch browser lint
	$(BIN)/python -m pytest

unit: venv
	$(BIN)/python -m pytest -m "not kafka"

kafka-up:
	$(PYTHON) scripts/kafka_local.py start

kafka-down:
	$(PYTHON) scripts/kafka_local.py stop

keycloak-up:
	$(PYTHON) scripts/keycloak_local.py start

keycloak-down:
	$(PYTHON) scripts/keycloak_local.py stop

bench-enforce: venv kafka-fetch keycloak-fetch
	$(BIN)/python -m bench.enforce_bench

bench: venv kafka-fetch
	$(BIN)/python -m bench.run

bench-evaluation: venv
	$(BIN)/python -m bench.evaluation --benign 200 --hijack 50 --compare bench/policies/before-issue-9.toml --results bench/evaluation_results.json

bench-quick: venv kafka-fetch
	$(BIN)/python -m bench.run --quick

demo-data: venv
	$(BIN)/python data/generate_events.py --profile demo --out $(DEMO)

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache .sessionwarden-data .kafka-local .keycloak-local
