# Two entry points for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-pg install screenshots bench-group bench-db-copy bench-estimate bench-reliability bench-crash bench-outage bench-fuzz bench-load lint clean

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

# The kiosk reads aloud with Debian's espeak-ng (the tests render its speech to WAV files) and
# draws large text with DejaVu Sans; the lobby's name calls are spoken by the same espeak-ng.
/usr/bin/espeak-ng /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng fonts-dejavu-core >/dev/null; \
	else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng fonts-dejavu-core >/dev/null; fi

# The PostgreSQL tests (store contract, several server processes) start a throwaway cluster
# with Debian's postgresql (15): initdb/pg_ctl under /usr/lib/postgresql/15/bin.
/usr/lib/postgresql/15/bin/initdb:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi

demo: $(STAMP)
	$(BIN)/waitroom demo

# WAITROOM_REQUIRE_PG=1: a PostgreSQL test that cannot get its cluster fails here, never skips.
test: $(STAMP) /usr/bin/chromium /usr/bin/espeak-ng /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/lib/postgresql/15/bin/initdb
	WAITROOM_REQUIRE_PG=1 $(BIN)/python -m pytest

# The whole suite on PostgreSQL: a throwaway cluster (stopped afterwards, even on a failure) is
# WAITROOM_TEST_DATABASE for every test; tests about SQLite itself (sqlite_only) are skipped.
# With WAITROOM_TEST_DATABASE already set, the suite runs on that server instead.
test-pg: $(STAMP) /usr/bin/chromium /usr/bin/espeak-ng /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/lib/postgresql/15/bin/initdb
	@if [ -n "$$WAITROOM_TEST_DATABASE" ]; then WAITROOM_REQUIRE_PG=1 $(BIN)/python -m pytest; \
	else WAITROOM_REQUIRE_PG=1 $(BIN)/python -m tests.pg_cluster $(BIN)/python -m pytest; fi

# The README's console, display, status-page and tablet pictures, from the browser tests that walk them.
screenshots: $(STAMP) /usr/bin/chromium
	WAITROOM_SCREENSHOTS=1 $(BIN)/python -m pytest tests/test_browser.py -k emergency_moves_board
	WAITROOM_SCREENSHOTS=1 $(BIN)/python -m pytest tests/test_kiosk_web.py -k qr_code_to_the_status_page_and
	WAITROOM_SCREENSHOTS=1 $(BIN)/python -m pytest tests/test_browser_reports.py

bench-estimate: $(STAMP)
	$(BIN)/python ../shared/replay/score.py --cmd "$(BIN)/waitroom replay" ../shared/replay/public/*.json

# Issue #7's longer runs (docs/RELIABILITY.md has the figures): about 8 minutes in all.
bench-reliability: bench-crash bench-outage bench-fuzz bench-load

bench-crash: $(STAMP)
	$(BIN)/python bench/bench_crash.py --cycles 60
	$(BIN)/python bench/bench_crash.py --texts --cycles 60

bench-outage: $(STAMP)
	$(BIN)/python bench/bench_outage.py --part kiosk
	$(BIN)/python bench/bench_outage.py --part notifier --defaults --speed 30
	$(BIN)/python bench/bench_outage.py --part notifier --defaults --speed 30 --whole-api

bench-fuzz: $(STAMP)
	$(BIN)/python bench/bench_fuzz.py --examples 300

bench-load: $(STAMP)
	$(BIN)/python bench/bench_load.py

# Issue 13: 200 clinics on group-mode processes on one PostgreSQL (a throwaway cluster unless
# WAITROOM_TEST_DATABASE is set); about 10 min. A smoke run: .venv/bin/python bench/bench_group.py --quick
bench-group: $(STAMP) /usr/lib/postgresql/15/bin/initdb
	$(BIN)/python bench/bench_group.py

bench-db-copy: $(STAMP) /usr/lib/postgresql/15/bin/initdb
	$(BIN)/python bench/bench_db_copy.py

lint: $(STAMP)
	$(BIN)/ruff check server notifier kiosk tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache
