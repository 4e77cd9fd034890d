# CloudBurst: `make demo` deploys a one-host CloudBurst here; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PLAYBOOKS := site.yml push-env.yml $(wildcard playbooks/*.yml)
SCENARIOS ?= $(notdir $(wildcard molecule/*))

.PHONY: venv lint pytest-pure harness pytest molecule test test-fast test-stack test-fresh demo images-publish lock lock-env docs clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e client
	touch $@

lint: venv
	$(BIN)/yamllint .
	$(BIN)/ansible-lint
	for playbook in $(PLAYBOOKS); do $(BIN)/ansible-playbook --syntax-check $$playbook >/dev/null || exit 1; done
	cd client && ../$(BIN)/ruff check src ../files/env && ../$(BIN)/mypy
	@echo "lint: yamllint, ansible-lint (production), syntax-check of $(words $(PLAYBOOKS)) playbooks, ruff and mypy passed"

# The fast safety net: every test that needs no service (no Redis, InfluxDB, Nginx, S3 or Docker), in seconds.
pytest-pure: venv
	tests/harness/without-services.sh $(BIN)/python -m pytest tests --ignore=tests/fresh -m "not services" -q

harness:
	tests/harness/ensure-services.sh
	tests/harness/ensure-docker.sh
	tests/harness/build-test-images.sh

pytest: venv harness
	$(BIN)/python -m pytest tests --ignore=tests/fresh -v --durations=15

molecule: venv harness
	set -e; for scenario in $(SCENARIOS); do \
	  echo "== molecule test -s $$scenario"; started=$$(date +%s); \
	  PATH=$(CURDIR)/$(BIN):$$PATH PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 $(BIN)/molecule test -s $$scenario; \
	  echo "== molecule test -s $$scenario passed in $$(( $$(date +%s) - started )) s"; \
	done

# Two stages, each well under 45 minutes on 2 cores; `make test` (and CI) runs both.
# test-fast: lint, pytest and the docker_engine and swarm scenarios (about 23 min);
# test-stack: the stack scenario with its reliability suite, backup/restore and faults (about 35 min).
test-fast: lint pytest-pure pytest
	$(MAKE) molecule SCENARIOS="docker_engine swarm"

test-stack: venv harness
	$(MAKE) molecule SCENARIOS=stack

# test-fresh: the README's set-up and `make demo` on a bare Debian 12 container, from `git archive HEAD`.
test-fresh: venv harness
	$(BIN)/python -m pytest tests/fresh -v --durations=5

test: test-fast test-stack test-fresh

# One host: deploy, publish the example env, run a 200-member Net3 ensemble, print its worst members and
# draw a fan chart (demo-fan-chart.png). Each run submits a new ensemble.
demo: venv
	$(BIN)/ansible-playbook -i inventory/local site.yml
	$(BIN)/ansible-playbook -i inventory/local push-env.yml
	@set -e; ensemble=$$($(BIN)/cloudburst submit files/models/Net3.inp files/scenarios/net3-demand-roughness.yml --wait); \
	  $(BIN)/cloudburst summary $$ensemble --top 10; \
	  $(BIN)/cloudburst results $$ensemble --element node:123 --attribute pressure --plot demo-fan-chart.png; \
	  echo "ensemble $$ensemble: fan chart of pressure at node 123 in demo-fan-chart.png"

# Build CloudBurst's images and push them to REGISTRY (registry/namespace; docker login to it first) for
# images_mode: pull with images_pull_registry set to the same value.
images-publish: venv
	@test -n "$(REGISTRY)" || { echo "images-publish: name the registry: make images-publish REGISTRY=host:port/namespace"; exit 2; }
	$(BIN)/ansible-playbook playbooks/images-publish.yml -e images_publish_to=$(REGISTRY)

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q -r requirements.in
	.lock-venv/bin/pip freeze --exclude-editable | grep -v -E "^(pip|setuptools|wheel)==" > requirements.txt
	rm -rf .lock-venv

# Regenerate the example envs' Pipfile.lock files (EPANET's and SWMM's) with a pinned pipenv in a throwaway venv.
EXAMPLE_ENVS := files/env/epanet files/env/swmm
lock-env:
	rm -rf .pipenv-venv && $(PYTHON) -m venv .pipenv-venv
	.pipenv-venv/bin/pip install -q pipenv==2026.10.3
	for env in $(EXAMPLE_ENVS); do \
	  (cd $$env && PIPENV_IGNORE_VIRTUALENVS=1 WORKON_HOME=$(CURDIR)/.pipenv-venv/envs \
	   $(CURDIR)/.pipenv-venv/bin/pipenv lock) || exit 1; \
	done
	rm -rf .pipenv-venv

# Copy each role default's comment into its argument spec and regenerate the roles' README variable tables.
docs: venv
	$(BIN)/python tools/role_docs.py

clean:
	rm -rf $(VENV)
