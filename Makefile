# The two commands a newcomer types: `make demo` and `make test` (`make lint` checks style;
# `make system-deps` once per machine installs the system packages the tests need).
# Each creates .venv and installs what it needs (pinned by constraints.txt).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit test-e2e system-deps bench lint lint-ruff lint-format lint-types format validate-pack \
	clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.py constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/c7n-imds demo

# System packages the tests need (Debian's chromium, for tests/test_dashboard.py):
# installed once per machine by this documented step, which .ci/run calls; `make test`
# itself never runs apt-get.
system-deps:
	bash .ci/setup-system.sh

# Both halves; each uses one worker per core.
test: test-unit test-e2e

# Pure code and placebo flights (marker `unit`): no server, no subprocess.
test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -n auto -m unit tests

# A real moto server and the real c7n-imds command (marker `e2e`), test by test on
# every core; a module whose fixtures are module-scoped (the installed wheel, say) is
# one xdist_group and stays on one worker, so they are made once.
test-e2e: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadgroup -m "not unit" tests

bench: $(STAMP)
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Fails on any finding (configuration in pyproject.toml: upstream Cloud Custodian's ruff
# rules with preview, the formatter, mypy over the pure model). .pre-commit-config.yaml
# runs the same targets.
LINTED := c7n_imds c7n_imds_report tests bench setup.py
lint: lint-ruff lint-format lint-types

lint-ruff: $(STAMP)
	$(BIN)/ruff check $(LINTED)

lint-format: $(STAMP)
	$(BIN)/ruff format --check $(LINTED)

lint-types: $(STAMP)
	$(BIN)/mypy

# What `make lint` checks, fixed where ruff can.
format: $(STAMP)
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

# Every policy file of the pack, as custodian validates it (the pre-commit hook).
validate-pack: $(STAMP)
	$(BIN)/c7n-imds validate policies/*.yml policies/lambda/*.yml

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
