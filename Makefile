# Vigil: the make targets are the interface.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
VIGIL := $(VENV)/bin/vigil

.PHONY: install system-deps demo test test-unit test-integration test-reliability lint bench train clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip wheel
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Java 17 + Maven run the embedded Kafka broker; Chromium drives the browser test.
system-deps:
	@command -v java >/dev/null && command -v mvn >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless maven)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) || \
	  echo "chromium not installed: browser tests will be skipped"

install: $(VENV)/.installed system-deps

demo: install
	$(VIGIL) demo

test: install
	$(PY) -m pytest -q -p no:cacheprovider tests

test-unit: install
	$(PY) -m pytest -q tests/unit

test-integration: install
	$(PY) -m pytest -q tests/integration

test-reliability: install
	$(PY) -m pytest -q -s tests/reliability

lint: install
	$(VENV)/bin/ruff check agents models schemas infra tests bench
	$(VENV)/bin/ruff format --check agents models schemas infra tests bench || true
	$(VENV)/bin/mypy agents models schemas infra bench --exclude models/train
	$(VENV)/bin/pip-audit --progress-spinner off || true

bench: install
	$(VIGIL) bench --json

# Training needs PyTorch (several GB): a separate venv, never the serving one.
train: install
	test -x .venv-train/bin/python || ($(PYTHON) -m venv .venv-train && \
	  .venv-train/bin/pip install -q -e '.[train]')
	$(VIGIL) train

clean:
	rm -rf $(VENV) .pytest_cache
