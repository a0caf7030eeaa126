# Reclaim: `make run` starts the whole stack on this machine, `make test` runs the suite.
# Both bootstrap .venv from pyproject.toml on first use (Python 3.11+ is all you need).

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test lint bench bench-code-latency translations clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)
	$(BIN)/reclaim dev

test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || echo "The browser tests are skipped: Chromium is not installed (apt-get install chromium)."
	$(BIN)/python -m pytest -n 2 --dist worksteal $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# A short run of the comparison with the raw Temporal ceiling and of the open-cases wave
# (under 2 minutes); `python -m bench compare` and `open-cases` without options for the full one.
bench: $(STAMP)
	$(BIN)/python -m bench compare --cases 100 --rounds 2 --concurrency 20
	$(BIN)/python -m bench open-cases --cases 1000 --probe 100

bench-code-latency: $(STAMP)
	$(BIN)/python -m bench code-latency

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# After changing a text in the code or a template: refresh the catalog template and every
# language's catalog (new texts appear untranslated; tests/test_languages.py lists them).
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k t -k plural:1,2 --no-location --sort-output --width=100 \
		--project=Reclaim --copyright-holder=Reclaim -o reclaim/locales/messages.pot .
	$(BIN)/pybabel update -i reclaim/locales/messages.pot -d reclaim/locales --no-fuzzy-matching --ignore-obsolete --width=100
