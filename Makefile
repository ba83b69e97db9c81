# The two commands a newcomer types: `make demo` and `make test` (`make lint` checks style).
# Each creates .venv and installs what it needs (pinned by constraints.txt).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit bench lint clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.py constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/c7n-imds demo

# tests/test_dashboard.py opens the HTML summary in Debian's Chromium, installed here
# when missing (with sudo unless root; the package lists are updated only when the
# install fails without).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get install -y --no-install-recommends chromium || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }

# One worker per core; a test module stays on one worker (its module-scoped fixtures,
# such as the installed wheel, are made once).
test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest -q -n auto --dist loadfile tests

# Pure code and placebo flights only: seconds, no server.
test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m unit tests

bench: $(STAMP)
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Fails on any finding (configuration in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check c7n_imds tests bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
