# Two entry points for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench-estimate lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium drives the browser tests (Playwright's own browser download cannot work here).
/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi

demo: $(STAMP)
	$(BIN)/waitroom demo

test: $(STAMP) /usr/bin/chromium
	$(BIN)/python -m pytest

bench-estimate: $(STAMP)
	$(BIN)/python ../shared/replay/score.py --cmd "$(BIN)/waitroom replay" ../shared/replay/public/*.json

lint: $(STAMP)
	$(BIN)/ruff check server notifier kiosk tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache
