# CloudBurst: `make demo` deploys a one-host CloudBurst here; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PLAYBOOKS := site.yml push-env.yml $(wildcard playbooks/*.yml)
SCENARIOS := $(notdir $(wildcard molecule/*))

.PHONY: venv lint harness pytest molecule test demo lock clean

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
	@echo "lint: yamllint, ansible-lint (production) and syntax-check of $(words $(PLAYBOOKS)) playbooks passed"

harness:
	tests/harness/ensure-services.sh
	tests/harness/ensure-docker.sh
	tests/harness/build-test-images.sh

pytest: venv harness
	$(BIN)/python -m pytest tests -v

molecule: venv harness
	set -e; for scenario in $(SCENARIOS); do \
	  echo "== molecule test -s $$scenario"; \
	  PATH=$(CURDIR)/$(BIN):$$PATH PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 $(BIN)/molecule test -s $$scenario; \
	done

test: lint pytest molecule

demo: venv harness
	$(BIN)/ansible-playbook -i inventory/local site.yml

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q -r requirements.in
	.lock-venv/bin/pip freeze --exclude-editable | grep -v -E "^(pip|setuptools|wheel)==" > requirements.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV)
