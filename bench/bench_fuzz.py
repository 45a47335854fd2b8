"""Fuzz: schemathesis over /api/openapi.json against a real `waitroom serve`, with valid tokens.

    .venv/bin/python bench/bench_fuzz.py                      # 300 examples per operation and mode
    .venv/bin/python bench/bench_fuzz.py --examples 1000

For every operation in the served OpenAPI document, schemathesis generates requests, both
valid ("positive") and invalid ("negative") against the schema, sent with a token of a role
the operation's `x-roles` admits. Each answer must not be a 5xx, must use a status code the
document lists, must be JSON when it says so, and must match the documented schema; a
request the schema forbids must not be accepted (negative data rejection).
`tests/test_reliability_fuzz.py` runs the same code with a few examples each.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from bench.bench_crash import START, ServeProcess, free_port, seed

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class FuzzReport:
    calls: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def fuzz(base_url: str, tokens: dict[str, str], *, examples: int, seed_value: int = 0,
         modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)) -> FuzzReport:
    """Run schemathesis over every operation of the served document; collect failures, don't stop at one."""
    doc = requests.get(f"{base_url}/api/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(doc)
    report = FuzzReport()
    session = requests.Session()
    for result in schema.get_all_operations():
        op = result.ok()
        roles: list[str] | None = op.definition.raw.get("x-roles")
        headers = {"Authorization": f"Bearer {tokens[roles[0]]}"} if roles else {}
        for mode in modes:
            _run_operation(op, mode, base_url, session, headers, examples, seed_value, report)
    return report


def _run_operation(op: Any, mode: GenerationMode, base_url: str, session: requests.Session,
                   headers: dict[str, str], examples: int, seed_value: int, report: FuzzReport) -> None:
    seen: set[str] = set()

    @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                         suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate],
                         print_blob=False)
    @hypothesis.seed(seed_value)
    @given(case=op.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=10)
        report.calls += 1
        report.statuses[response.status_code] += 1
        checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (AssertionError, FailureGroup) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            key = f"{op.label} [{mode.value}]: {first}"
            if key not in seen:
                seen.add(key)
                detail = f"{response.status_code} {response.text[:300]!r}"
                report.failures.append(f"{key}\n    {case.as_curl_command(headers)}\n    -> {detail}"
                                       f"\n    {str(e).strip()[:600]}")

    try:
        one()
    except hypothesis.errors.Unsatisfiable:
        pass  # nothing to make invalid (a GET without parameters has no negative cases)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=300, help="examples per operation and generation mode")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="waitroom-fuzz-") as d:
        db = Path(d) / "clinic.db"
        tokens = asyncio.run(seed(db))
        server = ServeProcess(db, free_port(), START, log=Path(d) / "serve.log")
        asyncio.run(server.start())
        t0 = time.perf_counter()
        try:
            report = fuzz(server.url, tokens, examples=args.examples, seed_value=args.seed)
        finally:
            server.stop()
        took = time.perf_counter() - t0
        errors = [ln for ln in (Path(d) / "serve.log").read_text().splitlines() if '"level": "error"' in ln]
    for f in report.failures:
        print(f)
    print(f"requests                 {report.calls} in {took:.0f} s")
    print(f"status codes             {dict(sorted(report.statuses.items()))}")
    print(f"5xx                      {sum(n for s, n in report.statuses.items() if s >= 500)}")
    print(f"check failures           {len(report.failures)}")
    print(f"server error log lines   {len(errors)}")
    return 1 if report.failures or errors else 0


if __name__ == "__main__":
    sys.exit(main())
