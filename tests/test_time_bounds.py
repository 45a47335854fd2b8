"""Times the server will not believe (issue 11, item 2; issue 15, item 2): no device's wall clock,
no event far from the clinic's day, and no page grown by one absurd time."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kiosk.api import HttpClinicClient
from kiosk.offline import OfflineQueue

try:
    from kiosk.offline import age_s
except ImportError:
    age_s = None
from server.app import create_app
from server.config import Config, ManualClock
from server.demo import seed_day
from server.store import open_store
from tests import dbq
from tests.conftest import DAY, TZ, Api, NewDb
from tests.test_web_console import add_user, log_in

HOUSEHOLD = "(312) 555-0102"  # Max and Bella, Dr. Ruiz and Dr. Chen
FIRST_V1 = f"{DAY.isoformat()}-v1-0800"


async def _lookup(api: Api) -> list[str]:
    resp = await api.client.post("/api/kiosk/lookup", json={"phone": HOUSEHOLD}, headers=api.h("kiosk"))
    return [a["id"] for a in (await resp.json())["appointments"]]


async def _checkin(api: Api, key: str, **extra: Any) -> tuple[int, Any]:
    ids = await _lookup(api)
    body = {"phone": HOUSEHOLD, "appointments": ids[:1], "idempotency_key": key, **extra}
    resp = await api.client.post("/api/kiosk/checkin", json=body, headers=api.h("kiosk"))
    return resp.status, await resp.json()


async def _arrived(api: Api) -> dict[str, str]:
    async with dbq.opened(api.db) as store, store.read() as q:
        day = await q.visits_for_day(DAY)
    return {v.id: v.arrived.astimezone(TZ).strftime("%H:%M") for v in day.visits.values() if v.arrived is not None}


@pytest.mark.parametrize("taken_at", ["0001-01-02T00:00:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59",
                                      "9999-12-31T23:00:00-06:00"])
async def test_kiosk_taken_at_of_year_1_or_9999_is_a_400_naming_it(api: Api, taken_at: str) -> None:
    status, body = await _checkin(api, "kiosk-year-key", taken_at=taken_at)
    assert status == 400, body
    assert body["field"] == "taken_at"
    assert await _arrived(api) == {}


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00", "9999-12-31T23:59:59", "2100-01-01T00:00:00",
                                "2026-02-27T08:00:00"])
async def test_event_far_from_the_clinics_day_is_a_400_on_at(api: Api, at: str) -> None:
    resp = await api.client.post("/api/events", json={"type": "start", "appointment": FIRST_V1, "at": at},
                                 headers=api.h("reception"))
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["field"] == "at"
    late = await api.client.post("/api/events", json={"type": "vet_late", "vet": "v1", "until": at},
                                 headers=api.h("reception"))
    assert late.status == 400 and (await late.json())["field"] == "until"


async def test_offline_checkin_time_is_the_servers_clock_minus_the_kiosks_age(api: Api) -> None:
    api.clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=TZ))
    # A kiosk whose wall clock is a day out, that took the check-in 12 minutes ago.
    status, body = await _checkin(api, "kiosk-age-key-1", age_s=720, taken_at="2026-03-03T14:00:00")
    assert status == 200, body
    assert list((await _arrived(api)).values()) == ["08:48"]


async def test_offline_checkin_is_clamped_to_todays_opening_hours(api: Api) -> None:
    api.clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=TZ))
    # Queued overnight (an older kiosk's wall-clock stamp, or an age of 20 hours): from opening.
    assert (await _checkin(api, "kiosk-night-key", taken_at="2026-03-01T18:00:00"))[0] == 200
    assert list((await _arrived(api)).values()) == ["08:00"]


@pytest.mark.parametrize("age", [-1, 10 ** 12, "600", True])
async def test_nonsense_age_is_a_400_naming_it(api: Api, age: object) -> None:
    status, body = await _checkin(api, "kiosk-age-bad", age_s=age)
    assert status == 400 and body["field"] == "age_s"


def test_kiosk_reports_its_age_by_the_monotonic_clock_not_the_wall_clock() -> None:
    boot = "boot-a"
    # Same boot: the monotonic difference, whatever the wall clock said.
    assert age_s(1000.0, boot, {"taken_at": "0001-01-02T00:00:00"}, now_mono=1090.0, boot=boot) == 90.0
    # Rebooted since: no more than the time since boot can be vouched for.
    assert age_s(1000.0, "boot-old", {}, now_mono=30.0, boot=boot) == 30.0
    # Queued by an older kiosk (wall clock only): two readings of one clock, if sane.
    wall = datetime(2026, 3, 2, 15, 0, tzinfo=TZ)
    assert age_s(None, None, {"taken_at": (wall - timedelta(minutes=5)).isoformat()}, wall_now=wall) == 300.0
    assert age_s(None, None, {"taken_at": "0001-01-02T00:00:00"}, wall_now=wall) is None
    assert age_s(None, None, {"taken_at": (wall + timedelta(hours=1)).isoformat()}, wall_now=wall) is None


async def _poison(db: str) -> None:
    """What an absurd time left in the database before it was refused (or a hand edit) does."""
    if dbq.on_postgres(db):  # timestamptz holds both
        late: Any = datetime(2100, 1, 1, 6, tzinfo=UTC)
        early: Any = datetime(1, 1, 2, 6, tzinfo=UTC)
    else:  # SQLite's text, in the form older versions wrote
        late, early = "2100-01-01T06:00:00+00:00", "0001-01-02T06:00:00+00:00"
    await dbq.rows(db, "UPDATE appointments SET status = 'in_consult', arrived = ?, started = ? WHERE id = ?",
                   late, late, FIRST_V1)
    await dbq.rows(db, "UPDATE appointments SET status = 'waiting', arrived = ? WHERE id = ?",
                   early, f"{DAY.isoformat()}-v2-0800")


async def test_pages_stay_a_day_wide_whatever_the_data_says(api: Api) -> None:
    await _poison(api.db)
    api.clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=TZ))
    await add_user(api.db)
    assert (await log_in(api.client)).status in (302, 303)
    pages = {
        "display": await api.client.get(f"/display?token={api.tokens['display']}"),
        "console": await api.client.get("/console"),
    }
    for name, resp in pages.items():
        html = await resp.text()
        assert resp.status == 200, (name, html[:300])
        # One mark per hour of the clinic's day (08:00-17:00, stretched by at most 3 h + 6 h).
        marks = html.count('class="hour"')
        assert marks <= 3 * 19, (name, marks)
        assert len(html) < 400_000, (name, len(html))
        for n in re.findall(r"about (\d+)(?:–\d+)? min", html):
            assert int(n) <= 8 * 60, (name, n)


async def test_demo_style_checkin_through_the_kiosk_reads_the_demo_time_on_the_console(new_db: NewDb,
                                                                                      tmp_path: Path) -> None:
    """The demo runs a simulated clock (10:00 on a day ahead of the box's wall clock): the kiosk's
    check-in must show at the demo's time on the console, not the kiosk box's."""
    day = date.today() + timedelta(days=400)
    db = new_db("demo")
    store = await open_store(str(db))
    try:
        async with store.transaction() as conn:
            tokens = await seed_day(conn, day, "America/Chicago", history_days=3, token_prefix="test")
    finally:
        await store.close()
    await add_user(db)
    # 10:00:30: the server counts the check-in from its clock minus the kiosk's measured age (a
    # few ms, or seconds on a busy machine), and the console shows the minute.
    clock = ManualClock(datetime(day.year, day.month, day.day, 10, 0, 30, tzinfo=TZ))
    config = Config(db_path=str(db), clock=clock, secret="test-secret", public_url="http://clinic.test")
    async with TestClient(TestServer(create_app(config))) as client:
        kiosk = HttpClinicClient(str(client.make_url("")), tokens["kiosk"])
        try:
            found = await kiosk.lookup("312-555-0102")
            max_visit = next(a for a in found["appointments"] if a["pet"] == "Max")
            queue = OfflineQueue(tmp_path / "kiosk-queue.db")
            sent = await queue.submit(kiosk, "checkin", {"phone": "312-555-0102", "appointments": [max_visit["id"]],
                                                         "sms_consent": True})
            assert sent.answer is not None and sent.answer["visits"][0]["status"] == "waiting"
        finally:
            await kiosk.close()
        clock.advance(minutes=7)
        assert (await log_in(client)).status in (302, 303)
        html = await (await client.get("/console")).text()
        card = html[html.index(f'id="v-{max_visit["id"]}"'):][:3000]
        assert "checked in 10:00 AM, waiting 7 min" in card, card
