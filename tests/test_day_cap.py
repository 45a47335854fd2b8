"""What one day can hold (issue 11, item 4): a capped schedule, estimation that never stops the
server answering, and no delay text no clinic could have."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime, timedelta
from typing import Any

from server.app import RUNTIME
from server.estimator import MAX_QUEUE
from tests import dbq
from tests.conftest import DAY, TZ, Api
from tests.test_web_console import add_user, log_in


def _push(n: int, *, prefix: str = "big", vet: str = "v1", step_s: int = 20) -> dict[str, Any]:
    start = datetime(DAY.year, DAY.month, DAY.day, 8, 0, tzinfo=TZ)
    return {"appointments": [{"id": f"{prefix}-{i}", "vet": vet, "type": "vacc", "pet": f"Pet {i}",
                              "scheduled": (start + timedelta(seconds=step_s * i)).isoformat()} for i in range(n)]}


async def _count(api: Api, sql: str, *args: Any) -> int:
    return int(await dbq.value(api.db, sql, *args))


async def _set_settings(api: Api, **settings: Any) -> None:
    await dbq.set_settings(api.db, replace=True, **settings)
    await api.client.server.app[RUNTIME].reload_clinic()


async def test_ten_thousand_appointments_in_one_push_are_refused_with_a_413_that_says_why(api: Api) -> None:
    before = await _count(api, "SELECT COUNT(*) FROM appointments")
    # 877 KB as the review sent it (as a stream: aiohttp warns about big raw bodies).
    doc = _push(10_000, step_s=1)
    for a in doc["appointments"]:
        del a["pet"]
    raw = json.dumps(doc, separators=(",", ":")).encode()
    assert 800_000 < len(raw) < 1_000_000
    body = io.BytesIO(raw)
    resp = await api.client.post("/api/schedule", data=body,
                                 headers={**api.h("pms"), "Content-Type": "application/json"})
    assert resp.status == 413, await resp.text()
    answer = await resp.json()
    assert answer["field"] == "appointments"
    assert "2000" in answer["error"] and "max_visits_per_day" in answer["error"]
    assert await _count(api, "SELECT COUNT(*) FROM appointments") == before


async def test_a_push_that_fills_the_day_past_the_cap_changes_nothing(api: Api) -> None:
    today = await _count(api, "SELECT COUNT(*) FROM appointments WHERE day = ?", DAY)
    # The cap is a clinic setting; here just above today's bookings.
    await _set_settings(api, max_visits_per_day=today + 5)
    ok = await api.client.post("/api/schedule", json=_push(5), headers=api.h("pms"))
    assert ok.status == 200, await ok.text()
    over = await api.client.post("/api/schedule", json=_push(3, prefix="more"), headers=api.h("pms"))
    assert over.status == 413
    assert f"{today + 8} visits on {DAY.isoformat()}" in (await over.json())["error"]
    assert await _count(api, "SELECT COUNT(*) FROM appointments WHERE id LIKE 'more-%'") == 0
    # Walk-ins and emergencies count too.
    resp = await api.client.post("/api/events", json={"type": "emergency", "id": "e1", "vet": "v1"},
                                 headers=api.h("reception"))
    assert resp.status == 413 and (await resp.json())["field"] == "id"


async def test_a_queue_no_vet_could_see_is_estimated_only_as_far_as_a_day_goes(api: Api) -> None:
    # 1,500 bookings for one vet (under the day cap): the estimator's cost grows with the square
    # of a queue (it took 48 s and stalled every write); only the first MAX_QUEUE are simulated.
    resp = await api.client.post("/api/schedule", json=_push(1500), headers=api.h("pms"))
    assert resp.status == 200, await resp.text()
    api.clock.advance(minutes=1)  # past any estimate cached by the push
    slow = asyncio.ensure_future(api.client.get("/api/estimates", headers=api.h("reception")))
    while not slow.done():
        assert (await api.client.get("/api/health")).status == 200
        await asyncio.sleep(0.01)
    est = await (await slow).json()
    v1 = [e for e in est["estimates"] if e["vet"] == "v1"]
    assert 100 <= len(v1) <= MAX_QUEUE
    assert {e["vet"] for e in est["estimates"]} >= {"v2", "v3"}  # the other vets are untouched


async def test_a_delay_no_clinic_could_have_is_held_for_reception_with_the_reason(api: Api) -> None:
    api.clock.set(datetime(DAY.year, DAY.month, DAY.day, 8, 0, tzinfo=TZ))
    # A vet "away" until tomorrow morning: every one of her clients would be ~20 h late.
    await api.event({"type": "vet_late", "vet": "v1", "until": "2026-03-03T04:00:00"})
    rows = await dbq.dicts(api.db, "SELECT status, error_code, error_message, body FROM outbox "
                                   "WHERE kind IN ('delay', 'later')")
    assert rows, "the delay was decided (and held), not ignored"
    assert all(r["status"] == "held" and r["error_code"] == "implausible" for r in rows), [tuple(r) for r in rows]
    assert all("more than the 360 min" in r["error_message"] for r in rows)
    await add_user(api.db)
    assert (await log_in(api.client)).status in (302, 303)
    html = await (await api.client.get("/console")).text()
    panel = html[html.index('id="texts-need-you"'):]
    assert "Not sent: it would tell the client about" in panel
    # It never went out: reception sends it "anyway", not "again".
    panel = panel[:panel.index("</section>")]
    assert "Send it anyway" in panel and "Send it again" not in panel
    assert rows[0]["body"].split(" will ")[0].replace("'", "&#39;") in panel
