"""API security: roles on every route, request size limit, kiosk lookup rate limit and privacy."""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bench.bench_crash import ServeProcess, free_port, seed
from server.app import create_app
from server.config import Config, ManualClock
from server.store import open_store
from tests.conftest import ROLES, START, Api, seed_clinic

APPT = "2026-03-02-v1-0800"
# A request that a role allowed on the route should see succeed (2xx). Routes not listed here
# (new ones) are still checked for auth: allowed roles get past it, the others don't.
BODIES: dict[tuple[str, str], Any] = {
    ("post", "/api/events"): {"type": "urgent", "note": "matrix"},
    ("post", "/api/schedule"): {"vets": [{"id": "v1", "name": "Dr. Ana Ruiz"}]},
    ("post", "/api/kiosk/lookup"): {"phone": "312-555-0102"},
    ("post", "/api/kiosk/checkin"): {"phone": "312-555-0102", "appointments": [], "idempotency_key": "matrix-1"},
    ("post", "/api/kiosk/walkin"): {"name": "A", "pet": "B", "species": "dog", "reason": "sick",
                                    "idempotency_key": "matrix-2"},
    ("post", "/api/kiosk/urgent"): {"idempotency_key": "matrix-3"},
}
# Routes whose success needs state the matrix does not make: 404 counts as "past auth".
NOT_FOUND_OK = {("get", "/api/kiosk/visits/{id}")}


async def test_every_api_route_admits_exactly_its_roles(api: Api) -> None:
    doc = await (await api.client.get("/api/openapi.json")).json()
    checked = 0
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, op in ops.items():
            url = path.replace("{id}", APPT)
            body = BODIES.get((method, path), {})
            allowed = op.get("x-roles")
            callers: dict[str, dict[str, str]] = {"none": {}, "forged": {"Authorization": "Bearer wr_pms_forged"},
                                                  **{role: api.h(role) for role in ROLES}}
            for who, headers in callers.items():
                kw = {"json": body} if method == "post" else {}
                r = await api.client.request(method.upper(), url, headers=headers, **kw)
                text = await r.text()
                where = f"{method.upper()} {path} as {who}: {r.status} {text[:200]}"
                assert r.status < 500, where
                if allowed is None:
                    assert r.status == 200, where
                elif who in ("none", "forged"):
                    assert r.status == 401, where
                elif who not in allowed:
                    assert r.status == 403, where
                elif (method, path) in NOT_FOUND_OK:
                    assert r.status in (200, 404), where
                elif (method, path) in BODIES or method == "get":
                    assert 200 <= r.status < 300, where
                else:
                    assert r.status not in (401, 403), where
                checked += 1
    assert checked >= 6 * 10  # every route of the document was exercised


def _peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (Linux: VmHWM), so a brief spike shows."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
async def test_a_10_mb_body_is_refused_with_413_without_a_memory_spike(clinic_db: str) -> None:
    db = clinic_db
    tokens = await seed(db, history_days=2)
    server = ServeProcess(db, free_port(), START)
    await server.start()
    try:
        assert server.proc is not None
        headers = {"Authorization": f"Bearer {tokens['pms']}", "Content-Type": "application/json"}
        body = b'{"type": "urgent", "note": "' + b"x" * (10 * 2**20) + b'"}'
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{server.url}/api/events", json={"type": "urgent"}, headers=headers) as r:
                assert r.status == 201  # warm: the route's own memory is in the baseline
            before = _peak_rss_mb(server.proc.pid)
            for _ in range(3):
                async with s.post(f"{server.url}/api/events", data=io.BytesIO(body), headers=headers) as r:
                    assert r.status == 413
                    assert (await r.json())["field"] == "body"
        grown = _peak_rss_mb(server.proc.pid) - before
    finally:
        server.stop()
    # The server stops reading at its limit (1 MB): the 10 MB is never held.
    assert grown < 5, f"server peak RSS grew {grown:.1f} MB while refusing 10 MB bodies"


@pytest.fixture
async def kiosk(clinic_db: str) -> AsyncIterator[tuple[TestClient[Any, Any], dict[str, str], Path]]:
    db = clinic_db
    tokens = await seed_clinic(db, history_days=2)
    config = Config(db_path=str(db), clock=ManualClock(START), secret="s", public_url="http://clinic.test",
                    kiosk_lookups_per_minute=10)
    async with TestClient(TestServer(create_app(config))) as client:
        yield client, tokens, db


async def test_kiosk_lookups_are_rate_limited_per_kiosk(kiosk: tuple[TestClient[Any, Any], dict[str, str], Path]
                                                        ) -> None:
    client, tokens, db = kiosk
    h = {"Authorization": f"Bearer {tokens['kiosk']}"}
    statuses = [(await client.post("/api/kiosk/lookup", json={"phone": f"312-555-01{i:02d}"}, headers=h)).status
                for i in range(14)]
    assert statuses == [200] * 10 + [429] * 4
    # Another kiosk in the lobby is not locked out by the first one's probing.
    store = await open_store(str(db))
    try:
        async with store.transaction() as conn:
            other = await conn.create_token("kiosk", "lobby-2", START)
    finally:
        await store.close()
    r = await client.post("/api/kiosk/lookup", json={"phone": "312-555-0102"},
                          headers={"Authorization": f"Bearer {other}"})
    assert r.status == 200


async def test_one_budget_per_kiosk_covers_lookup_checkin_walkin_and_urgent(
        kiosk: tuple[TestClient[Any, Any], dict[str, str], Path]) -> None:
    # A stolen kiosk token walked the phone book through the unlimited check-in route (100 numbers
    # in a second, 44 absent clients checked in). Every kiosk route now spends one budget.
    client, tokens, db = kiosk
    h = {"Authorization": f"Bearer {tokens['kiosk']}"}
    calls = [("lookup", {"phone": "312-555-0102"}), ("lookup", {"phone": "312-555-0199"})]
    calls += [("checkin", {"phone": f"312-555-01{i:02d}", "appointments": [], "idempotency_key": f"walk-{i:04d}"})
              for i in range(4)]
    calls += [("walkin", {"name": "A", "pet": "B", "species": "dog", "reason": "sick",
                          "idempotency_key": f"walkin-{i:03d}"}) for i in range(2)]
    calls += [("urgent", {"idempotency_key": f"urgent-{i:03d}"}) for i in range(2)]
    assert len(calls) == 10  # the fixture's budget
    for route, body in calls:
        r = await client.post(f"/api/kiosk/{route}", json=body, headers=h)
        assert r.status == 200, (route, await r.text())
    for route, body in calls:  # spent: each route refuses, whatever the number or key
        fresh = {**body, "idempotency_key": f"late-{route}-{body.get('phone', '')}"}
        r = await client.post(f"/api/kiosk/{route}", json=fresh, headers=h)
        assert r.status == 429, route


async def test_a_check_in_by_phone_alone_tells_nothing_about_the_visits_it_found(clinic_db: str) -> None:
    # The offline queue's "check in everything of this number's today" answered with pet, vet,
    # time and status link of visits nobody picked on screen.
    db = clinic_db
    tokens = await seed_clinic(db, history_days=2)
    config = Config(db_path=str(db), clock=ManualClock(START), secret="s", public_url="http://clinic.test",
                    kiosk_lookups_per_minute=1000)
    h = {"Authorization": f"Bearer {tokens['kiosk']}"}
    async with TestClient(TestServer(create_app(config))) as client:
        # A visit picked on screen (named in the check-in) gets its details and live estimate.
        picked = "2026-03-02-v3-0800"
        r = await client.post("/api/kiosk/checkin", headers=h, json={
            "phone": "312-555-0102", "appointments": [picked], "idempotency_key": "picked-0001"})
        assert r.status == 200, await r.text()
        body = await r.json()
        assert body["visits"][0]["pet"] == "Bella" and body["visits"][0]["status_url"]
        assert (await client.get(f"/api/kiosk/visits/{picked}", headers=h)).status == 200
        answers = []
        for i in range(100):
            r = await client.post("/api/kiosk/checkin", headers=h, json={
                "phone": f"312-555-{100 + i:04d}", "appointments": [], "idempotency_key": f"walk-{i:04d}"})
            assert r.status in (200, 404), await r.text()
            answers.append(await r.text())
        booked = [a for a in answers if '"checked_in": 0' not in a]
        assert booked and all('"visits": []' in a for a in booked), booked[:2]
        for word in ("Luna", "Bella", "Dr. ", "status_url", "/s/", "scheduled", "pet"):
            assert not any(word in a for a in answers), word
        # Nor can the kiosk ask for one of those visits by (guessable) id afterwards.
        r = await client.get(f"/api/kiosk/visits/{APPT}", headers=h)
        assert r.status == 404


def _shape(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in sorted(v.items())}
    return type(v).__name__


async def test_a_number_with_no_booking_answers_in_the_same_shape_and_time(clinic_db: str) -> None:
    db = clinic_db
    tokens = await seed_clinic(db, history_days=2)
    config = Config(db_path=str(db), clock=ManualClock(START), secret="s", public_url="http://clinic.test",
                    kiosk_lookups_per_minute=10_000)
    h = {"Authorization": f"Bearer {tokens['kiosk']}"}
    async with TestClient(TestServer(create_app(config))) as client:

        async def lookup(phone: str) -> tuple[float, dict[str, Any]]:
            t0 = time.perf_counter()
            r = await client.post("/api/kiosk/lookup", json={"phone": phone}, headers=h)
            body = await r.json()
            assert r.status == 200
            return time.perf_counter() - t0, body

        booked, unknown = await lookup("312-555-0102"), await lookup("312-555-0199")
        assert booked[1]["appointments"] and not unknown[1]["appointments"]
        assert _shape({**booked[1], "appointments": None}) == _shape({**unknown[1], "appointments": None})
        times: dict[str, list[float]] = {"booked": [], "unknown": []}
        for _ in range(40):  # interleaved, so drift in the machine's load hits both alike
            times["booked"].append((await lookup("312-555-0102"))[0])
            times["unknown"].append((await lookup("312-555-0199"))[0])
    ratio = statistics.median(times["unknown"]) / statistics.median(times["booked"])
    assert 0.8 < ratio < 1.25, f"median unknown/booked lookup time ratio {ratio:.2f}"
