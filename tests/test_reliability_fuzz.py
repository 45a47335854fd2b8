"""Fuzz: schemathesis over the served OpenAPI document finds no 5xx and no schema mismatch;
odd content types, deep nesting and wrong methods get a 4xx with the usual error body.

A bounded run of `bench/bench_fuzz.py` (which runs hundreds of examples per operation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.bench_crash import START, ServeProcess, free_port, seed
from bench.bench_fuzz import SECRET, TWILIO_ENV, form_paths, fuzz, odd_input
from tests.conftest import link_secret


@pytest.fixture
def served(clinic_db: str, tmp_path: Path) -> Iterator[tuple[ServeProcess, dict[str, str]]]:
    db = clinic_db
    tokens = asyncio.run(seed(db, history_days=3))
    server = ServeProcess(db, free_port(), START, log=tmp_path / "serve.log",
                          env={**TWILIO_ENV, "WAITROOM_TWILIO_BASE_URL": f"http://127.0.0.1:{free_port()}"})
    asyncio.run(server.start())
    try:
        yield server, tokens
    finally:
        server.stop()


def test_fuzzed_requests_get_documented_answers_and_never_a_server_error(
        served: tuple[ServeProcess, dict[str, str]], tmp_path: Path) -> None:
    server, tokens = served
    report = fuzz(server.url, tokens, examples=12, seed_value=1)
    assert report.failures == [], "\n".join(report.failures)
    assert not [s for s in report.statuses if s >= 500]
    # The tokens worked: authorised operations answered, not only 401s.
    assert report.statuses[200] > 0
    log = (tmp_path / "serve.log").read_text()
    assert '"level": "error"' not in log


def test_odd_content_types_deep_nesting_and_wrong_methods_get_a_4xx_with_the_error_body(
        served: tuple[ServeProcess, dict[str, str]], tmp_path: Path) -> None:
    server, tokens = served
    paths = form_paths(server.db, link_secret(str(server.db), SECRET))
    report = odd_input(server.url, tokens, examples=150, seed_value=1, form_paths=paths)
    assert report.failures == [], "\n".join(report.failures)
    assert report.calls == 150 and report.statuses[405] > 0 and report.statuses[400] > 0
    log = (tmp_path / "serve.log").read_text()
    assert '"level": "error"' not in log
