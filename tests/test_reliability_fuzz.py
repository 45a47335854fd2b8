"""Fuzz: schemathesis over the served OpenAPI document finds no 5xx and no schema mismatch.

A bounded run of `bench/bench_fuzz.py` (which runs hundreds of examples per operation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.bench_crash import START, ServeProcess, free_port, seed
from bench.bench_fuzz import fuzz


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServeProcess, dict[str, str]]]:
    db = tmp_path / "clinic.db"
    tokens = asyncio.run(seed(db, history_days=3))
    server = ServeProcess(db, free_port(), START, log=tmp_path / "serve.log")
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
