"""The console's "Practice system" panel: last sync and what it did, a stale or failing sync in
words, and the write-backs reception must do by hand or try again."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from server.store import open_store
from server.store.pms import NewPmsWrite, PmsSyncState
from tests.conftest import START, Api
from tests.test_web_console import Desk, add_user, log_in


@pytest.fixture
async def desk(api: Api) -> Desk:
    await add_user(api.db)
    assert (await log_in(api.client)).status == 303
    page = await api.client.get("/console")
    m = re.search(r'<meta name="csrf-token" content="([^"]+)"', await page.text())
    assert m
    return Desk(api, m.group(1))


async def _seed(desk: Desk, *, last_ok_ago: timedelta, error: str | None = None) -> tuple[int, int]:
    store = await open_store(str(desk.api.db))
    try:
        async with store.transaction() as tx:
            await tx.save_pms_state(PmsSyncState(
                "ezyvet", cursor="1800000000", last_ok_at=START - last_ok_ago, last_error=error,
                progress={"phase": "changes", "imported": 42, "cancelled": 1, "requests": 9, "skipped": []}))
            await tx.queue_pms_writes([
                NewPmsWrite("ezyvet", "ezyvet:1:rescheduled", "ezyvet:101", "rescheduled", {"pet": "Bella"},
                            status="task"),
                NewPmsWrite("ezyvet", "ezyvet:2:arrived", "ezyvet:102", "arrived", {"pet": "Rex"})], START)
            task, failed = sorted(w.id for w in await tx.pms_writes(("task", "queued"), 10))
            await tx.finish_pms_write(task, "task", START, error="Move appointment 101 (Bella) in ezyVet to 4:00 PM")
            await tx.finish_pms_write(failed, "failed", START, error="ezyVet: PATCH /v2/appointment/102 answered 404")
        return task, failed
    finally:
        await store.close()


async def test_panel_shows_the_last_sync_and_what_needs_reception(desk: Desk) -> None:
    task, failed = await _seed(desk, last_ok_ago=timedelta(minutes=1))
    page = await (await desk.client.get("/console")).text()
    assert "Practice system" in page and "last in step at" in page
    assert "42 bookings in step, 1 cancelled, 9 requests" in page
    assert "Move appointment 101 (Bella) in ezyVet to 4:00 PM" in page
    assert "did not take the arrival: ezyVet: PATCH /v2/appointment/102 answered 404" in page
    assert f'/console/pms/{failed}/retry' in page and f'/console/pms/{task}/retry' not in page
    assert "is <code>waitroom sync</code> running" not in page

    done = await desk.post(f"/console/pms/{task}/done")
    assert done["message"] == "Marked done in ezyVet."
    again = await desk.post(f"/console/pms/{failed}/retry")
    assert again["message"] == "Will try the arrival in ezyVet again."
    page = await (await desk.client.get("/console")).text()
    assert "Move appointment 101" not in page and "answered 404" not in page
    assert [r["appointment_id"] for r in await desk.events("pms_decision")] == ["ezyvet:101", "ezyvet:102"]
    rows = await desk.sql("SELECT status FROM pms_outbox ORDER BY id")
    assert rows == [("done",), ("queued",)]
    await desk.post(f"/console/pms/{task}/done", status=404)  # already handled: a clear answer, no change


async def test_a_stale_or_failing_sync_is_said_in_words(desk: Desk) -> None:
    await _seed(desk, last_ok_ago=timedelta(minutes=30), error="ezyVet: GET /v2/appointment answered 500 5 times")
    page = await (await desk.client.get("/console")).text()
    assert "Last try failed: ezyVet: GET /v2/appointment answered 500 5 times" in page


async def test_no_panel_before_any_connector_ran(desk: Desk) -> None:
    page = await (await desk.client.get("/console")).text()
    assert "Practice system" not in page
