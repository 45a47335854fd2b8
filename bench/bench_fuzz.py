"""Fuzz: schemathesis over /api/openapi.json against a real `waitroom serve`, with valid tokens.

    .venv/bin/python bench/bench_fuzz.py                      # 300 examples per operation and mode
    .venv/bin/python bench/bench_fuzz.py --examples 1000

For every operation in the served OpenAPI document, schemathesis generates requests, both
valid ("positive") and invalid ("negative") against the schema, sent with a token of a role
the operation's `x-roles` admits. Each answer must not be a 5xx, must use a status code the
document lists, must be JSON when it says so, and must match the documented schema; a
request the schema forbids must not be accepted (negative data rejection).

Then odd input schemathesis does not make (`odd_input`): bodies under content types a
handler does not expect (multipart without a boundary or with broken parts, unknown
charsets, JSON nested 1,000 to 200,000 deep), and wrong methods, sent with valid tokens to
every API route, the forms (`/login`, a valid `/r/` and `/s/.../car` link) and Twilio's
webhooks (the server runs with the Twilio provider, pointed at a closed port). Each answer
must be a 4xx with the usual error body (JSON on `/api`), and a 405 must say `Allow`.

`tests/test_reliability_fuzz.py` runs the same code with a few examples each.
"""

from __future__ import annotations

import argparse
import asyncio
import re
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

# The served app has the Twilio provider (so its webhooks exist) with an API nobody answers.
SECRET = "bench-secret"  # what ServeProcess sets WAITROOM_SECRET to
TWILIO_ENV = {"WAITROOM_SMS_PROVIDER": "twilio", "WAITROOM_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
              "WAITROOM_TWILIO_AUTH_TOKEN": "fuzz-auth-token", "WAITROOM_TWILIO_FROM": "+13125550100"}

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


# Content types a route does not expect, or that its reader cannot read.
ODD_CONTENT_TYPES = [
    "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=fz",
    "multipart/mixed; boundary=fz", "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=no-such-charset", "application/json",
    "application/json; charset=no-such-charset", "text/plain", "application/xml", "",
]


def _odd_body() -> Any:
    st = hypothesis.strategies
    depth = st.integers(1_000, 200_000)
    part_headers = st.sampled_from([
        b"nonsense", b'Content-Disposition: form-data; name="a"\r\nContent-Transfer-Encoding: odd',
        b'Content-Disposition: form-data; name="a"\r\nContent-Type: text/plain; charset=no-such-charset',
        b'Content-Disposition: form-data; name="a"; filename="x"', b'Content-Disposition: form-data; name="a"'])
    return st.one_of(
        depth.map(lambda n: b"[" * n),  # RecursionError in the JSON parser
        depth.map(lambda n: b'{"a":' * n),
        depth.map(lambda n: b'{"type": "urgent", "x": ' + b"[" * n + b"]" * n + b"}"),
        st.tuples(part_headers, st.binary(max_size=64), st.booleans()).map(
            lambda t: b"--fz\r\n" + t[0] + b"\r\n\r\n" + t[1] + (b"\r\n--fz--\r\n" if t[2] else b"")),
        st.binary(max_size=512),
    )


def odd_input(base_url: str, tokens: dict[str, str], *, examples: int, seed_value: int = 0,
              form_paths: tuple[str, ...] = ()) -> FuzzReport:
    """Odd content types, deep nesting and wrong methods to every API operation and `form_paths`."""
    doc = requests.get(f"{base_url}/api/openapi.json", timeout=10).json()
    targets: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers)
    for path, item in doc["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for method, op in item.items():
            roles = op.get("x-roles")
            headers = {"Authorization": f"Bearer {tokens[roles[0]]}"} if roles else {}
            targets.append((method.upper(), concrete, headers))
            targets.append(("PUT" if method != "put" else "PATCH", concrete, headers))  # always a 405
    targets += [("POST", p, {}) for p in form_paths]
    report = FuzzReport()
    session = requests.Session()
    seen: set[str] = set()
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                         suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate],
                         print_blob=False)
    @hypothesis.seed(seed_value)
    @given(target=st.sampled_from(targets), content_type=st.sampled_from(ODD_CONTENT_TYPES), body=_odd_body())
    def one(target: tuple[str, str, dict[str, str]], content_type: str, body: bytes) -> None:
        method, path, headers = target
        r = session.request(method, base_url + path, data=body, timeout=10,
                            headers={**headers, "Content-Type": content_type})
        report.calls += 1
        report.statuses[r.status_code] += 1
        problem = None
        if r.status_code >= 500:
            problem = "server error"
        elif r.status_code == 405 and not r.headers.get("Allow"):
            problem = "405 without Allow"
        elif path.startswith("/api/") and r.status_code >= 400:
            try:
                data = r.json()
            except ValueError:
                data = None
            ok = isinstance(data, dict) and isinstance(data.get("error"), str)
            if not ok:
                problem = "error answer without the JSON error body"
        if problem:
            shown = re.sub(r"/(r|s)/[^/?]+", r"/\1/<token>", path)
            key = f"{method} {shown} [{content_type}]: {problem}"
            if key not in seen:
                seen.add(key)
                report.failures.append(f"{key}\n    body {body[:80]!r}... ({len(body)} bytes)"
                                       f"\n    -> {r.status_code} {r.text[:300]!r}")

    one()
    return report


def form_paths(db: Path | str, key: str = SECRET) -> tuple[str, ...]:
    """The form routes, with valid links to one of the day's visits (so handlers read their form).
    `db`: any `--db` spec; `key`: what the server signs links with (WAITROOM_SECRET, on PostgreSQL
    derived per clinic)."""
    from notifier.links import make_token, status_token
    from server.store import open_store

    async def first_visit() -> str:
        store = await open_store(str(db))
        try:
            async with store.read() as q:
                return min((await q.visits_for_day(START.date())).visits)
        finally:
            await store.close()

    visit = asyncio.run(first_visit())
    return ("/login", f"/r/{make_token(key.encode(), visit, START)}", f"/s/{status_token(key, visit)}/car",
            "/sms/inbound", "/sms/status?row=1")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=300, help="examples per operation and generation mode")
    p.add_argument("--odd-examples", type=int, default=2000, help="odd-input requests (content types, nesting)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="waitroom-fuzz-") as d:
        db = Path(d) / "clinic.db"
        tokens = asyncio.run(seed(db))
        server = ServeProcess(db, free_port(), START, log=Path(d) / "serve.log",
                              env={**TWILIO_ENV, "WAITROOM_TWILIO_BASE_URL": f"http://127.0.0.1:{free_port()}"})
        asyncio.run(server.start())
        t0 = time.perf_counter()
        try:
            report = fuzz(server.url, tokens, examples=args.examples, seed_value=args.seed)
            took = time.perf_counter() - t0
            t0 = time.perf_counter()
            odd = odd_input(server.url, tokens, examples=args.odd_examples, seed_value=args.seed,
                            form_paths=form_paths(db))
            odd_took = time.perf_counter() - t0
        finally:
            server.stop()
        errors = [ln for ln in (Path(d) / "serve.log").read_text().splitlines() if '"level": "error"' in ln]
    for name, r, secs in (("schemathesis", report, took), ("odd input", odd, odd_took)):
        for f in r.failures:
            print(f)
        print(f"{name}: requests {r.calls} in {secs:.0f} s")
        print(f"  status codes           {dict(sorted(r.statuses.items()))}")
        print(f"  5xx                    {sum(n for s, n in r.statuses.items() if s >= 500)}")
        print(f"  check failures         {len(r.failures)}")
    print(f"server error log lines   {len(errors)}")
    return 1 if report.failures or odd.failures or errors else 0


if __name__ == "__main__":
    sys.exit(main())
