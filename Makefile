# Hotline 109: the same targets run on a laptop, a lab server and CI.
# `make demo` and `make test` install whatever is missing (as root on Debian 12/13).

PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STACK   := $(BIN)/python scripts/stack.py
SOUNDS  := build/sounds
export HOTLINE_ROOTFS ?= /opt/hotline/rootfs
# `make test PYTEST_WORKERS=2`: test modules on 2 pytest-xdist workers, each with its own
# stacks and ports (tests/support/workers.py); unset, one process as before
PYTEST_WORKERS ?=
XDIST   := $(if $(PYTEST_WORKERS),-n $(PYTEST_WORKERS) --dist loadfile)

.PHONY: help deps venv prompts run stop status demo test test-unit test-integration test-containers lint typecheck arch-check check clean

help:
	@echo "make demo   - install what is missing, start the stack, place SIPp calls, show them, stop"
	@echo "make test   - install what is missing, lint, type-check, run every test (unit + SIPp calls)"
	@echo "make run    - start the stack and leave it waiting for calls on 127.0.0.1:5060 (109)"
	@echo "make stop   - stop the stack started by make run"
	@echo "make test-containers - build docker/ with podman, run it, place a SIPp call through it"

deps:
	$(PY) scripts/stack.py deps

$(BIN)/hotline: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/hotline

prompts: venv
	$(BIN)/python -m ari_app.prompts.render --config config/hotline.yaml --out $(SOUNDS)

run: deps venv prompts
	$(STACK) up --name main

stop:
	$(STACK) down --name main

status:
	$(STACK) status --name main

demo: deps venv prompts
	$(BIN)/python scripts/demo.py

lint: venv
	$(BIN)/ruff check ari_app tests scripts bench

typecheck: venv
	$(BIN)/mypy

# no import cycle between ari_app's subpackages, no module over 400 lines
arch-check: venv
	$(BIN)/python scripts/arch_check.py

test-unit: venv
	$(BIN)/pytest -m "not integration and not browser" -q $(XDIST)

test-integration: deps venv prompts
	$(BIN)/pytest -m integration -q $(XDIST)

test: deps venv prompts lint typecheck arch-check
	$(BIN)/pytest -q $(XDIST)

# docker/'s images built with podman, the composed stack run, one SIPp call
# through it read back from the archive, every container removed (docker/README.md)
test-containers: deps venv prompts
	$(BIN)/python scripts/containers.py test

clean:
	-$(STACK) down --name main
	rm -rf .stack build var
