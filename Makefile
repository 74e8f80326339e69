# Vigil: the make targets are the interface.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
VIGIL := $(VENV)/bin/vigil

.PHONY: install system-deps demo test test-unit test-integration test-reliability lint audit lock bench train clean

# constraints.txt pins every version (make lock): the tests run what the Docker image ships
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -U pip wheel
	@# setuptools explains editable installs at length (UserWarning): not for every make run
	PYTHONWARNINGS=ignore::UserWarning $(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# Java 17 + Maven run the embedded Kafka broker, Debian's security-maintained redis-server the
# embedded Redis; Chromium drives the browser test; busybox's sh is the apache/kafka image's (Alpine)
# /bin/sh, which runs docker-compose's deploy/kafka-start.sh; Debian's prometheus (promtool and the
# server) and prometheus-alertmanager (amtool and the server) run deploy/prometheus in the tests.
system-deps:
	@command -v java >/dev/null && command -v mvn >/dev/null && command -v redis-server >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless maven redis-server)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) || \
	  echo "chromium not installed: browser tests will be skipped"
	@command -v busybox >/dev/null || (apt-get update -qq && apt-get install -y -qq busybox) || \
	  echo "busybox not installed: compose's Kafka start script is tested with dash, not Alpine's sh"
	@command -v promtool >/dev/null && command -v amtool >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager)
	@# Node runs the dashboard's scripts in the unit tests (the search term kept out of the URL)
	@command -v node >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs)

install: $(VENV)/.installed system-deps

demo: install
	$(VIGIL) demo

# the unit tests on every core (pytest-xdist); then the rest, one at a time: they share the machine's
# ports and CPU with the brokers, Redis and workers they start
test: install
	$(PY) -m pytest -q -p no:cacheprovider -n auto tests/unit
	$(PY) -m pytest -q -p no:cacheprovider --durations=15 --ignore=tests/unit tests

test-unit: install
	$(PY) -m pytest -q -n auto tests/unit

test-integration: install
	$(PY) -m pytest -q tests/integration

test-reliability: install
	$(PY) -m pytest -q -s tests/reliability

ROOMS := agents models schemas infra cli bench

# mypy cannot follow setuptools' package-dir mapping (an import hook), so it reads the rooms through
# a link tree, .typecheck/vigil/<room> -> <room>: the same files under their installed names.
.typecheck/vigil:
	mkdir -p $@ && for r in $(ROOMS); do ln -sfn ../../$$r $@/$$r; done

lint: install .typecheck/vigil
	$(VENV)/bin/ruff check $(ROOMS) tests deploy
	$(VENV)/bin/ruff format --check $(ROOMS) tests deploy
	MYPYPATH=.typecheck $(VENV)/bin/mypy --exclude '/models/train/' $(foreach r,$(ROOMS),-p vigil.$(r))
	$(VENV)/bin/lint-imports

# Known vulnerabilities of constraints.txt's pins, from PyPI's advisory data (docs/security.md):
# fails on one, and on a pin it could not audit (deploy/audit.py --allow-partial to accept those).
audit: install
	$(VENV)/bin/python deploy/audit.py

# constraints.txt afresh: the newest versions pyproject.toml allows, resolved in a new environment
# (then `make test`, and commit the file)
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q -U pip && .venv-lock/bin/pip install -q '.[dev]'
	.venv-lock/bin/python deploy/lock.py > constraints.txt.new && mv constraints.txt.new constraints.txt
	rm -rf .venv-lock build

bench: install
	$(VIGIL) bench --json

# Training needs PyTorch (several GB): a separate venv, never the serving one.
train: install
	test -x .venv-train/bin/python || ($(PYTHON) -m venv .venv-train && \
	  .venv-train/bin/pip install -q -c constraints.txt -e '.[train]')
	$(VIGIL) train

clean:
	rm -rf $(VENV) .pytest_cache .typecheck
