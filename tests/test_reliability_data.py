"""Backup under write load and client data retention."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bench.bench_crash import START, ServeProcess, free_port, seed
from server.app import create_app
from server.cli import main as cli_main
from server.config import Config, ManualClock
from server.retention import erase_stale_clients
from server.store import Store, open_store
from server.store.backup import backup
from server.store.interface import BookedVisit
from tests import dbq
from tests.conftest import DAY, seed_clinic


@pytest.mark.sqlite_only("waitroom backup copies a SQLite file (a group's PostgreSQL is backed up with pg_dump)")
async def test_backup_taken_under_write_load_restores_every_event_acknowledged_before_it(tmp_path: Path) -> None:
    db = tmp_path / "clinic.db"
    tokens = await seed(db, history_days=3)
    server = ServeProcess(db, free_port(), START, log=tmp_path / "serve.log")
    await server.start()
    acked: list[int] = []
    stop = asyncio.Event()
    under_way = asyncio.Event()

    async def poster(n: int, s: aiohttp.ClientSession) -> None:
        for i in range(10_000):
            if stop.is_set():
                return
            body = {"type": "walkin", "appointment": {"id": f"w-{n}-{i}", "vet": "v1", "pet": "Rex"}}
            async with s.post(f"{server.url}/api/events", json=body,
                               headers={"Authorization": f"Bearer {tokens['pms']}"}) as r:
                assert r.status == 201, await r.text()
                acked.append((await r.json())["seq"])
                if len(acked) > 10:
                    under_way.set()

    try:
        async with aiohttp.ClientSession() as s:
            tasks = [asyncio.create_task(poster(n, s)) for n in range(4)]
            # Writes under way (bounded wait, not a fixed sleep: a busy machine posts fewer a second).
            async with asyncio.timeout(60):
                await under_way.wait()
            before = list(acked)  # acknowledged before the backup started
            events_in_backup = await asyncio.to_thread(backup, db, tmp_path / "backup.db")
            await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        server.stop()
    assert len(before) > 10 and len(acked) > len(before)  # writes really went on around the backup

    # Restore as documented: server stopped, the backup copied over the database file.
    restored = tmp_path / "restored" / "clinic.db"
    restored.parent.mkdir()
    shutil.copy(tmp_path / "backup.db", restored)
    with contextlib.closing(sqlite3.connect(restored)) as conn:
        seqs = {r[0] for r in conn.execute("SELECT seq FROM events")}
    assert set(before) <= seqs
    assert len(seqs) == events_in_backup
    # The restored file serves: the server starts on it and answers.
    again = ServeProcess(restored, free_port(), START + timedelta(minutes=5))
    await again.start()
    try:
        async with aiohttp.ClientSession() as s, s.get(
                f"{again.url}/api/appointments/w-0-0", headers={"Authorization": f"Bearer {tokens['pms']}"}) as r:
            assert r.status == 200
            assert (await r.json())["status"] == "waiting"
    finally:
        again.stop()


@pytest.mark.sqlite_only("waitroom backup copies a SQLite file; its refusal of a postgresql:// URL is in test_postgres")
def test_backup_command_writes_a_copy_and_refuses_a_missing_database(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "clinic.db"
    asyncio.run(seed(db, history_days=1))
    assert cli_main(["backup", str(tmp_path / "b.db"), "--db", str(db)]) == 0
    assert json.loads(capsys.readouterr().out)["backup"] == str(tmp_path / "b.db")
    with contextlib.closing(sqlite3.connect(tmp_path / "b.db")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM appointments").fetchone()[0] > 0
    assert cli_main(["backup", str(tmp_path / "c.db"), "--db", str(tmp_path / "none.db")]) == 2
    assert not (tmp_path / "c.db").exists()


async def _add_client(store: Store, cid: str, mobile: str, visit_day: date) -> None:
    """A client with one visit, seen on `visit_day`."""
    async with store.transaction() as tx:
        await tx.save_client(cid, cid, mobile, False, "en", "bites")
        await tx.save_pet(f"pet-{cid}", cid, "Rex", None, "unknown")
        noon = datetime.combine(visit_day, time(12), tzinfo=UTC)
        await tx.save_bookings([BookedVisit(f"a-{cid}", visit_day, "v1", None, f"pet-{cid}", None, noon, 15)])
        await tx.set_visit_status(f"a-{cid}", "done")


async def _contact(db: str, cid: str) -> tuple[str | None, str]:
    [(mobile, notes)] = await dbq.rows(db, "SELECT mobile, notes FROM clients WHERE id = ?", cid)
    return mobile, notes


async def test_retention_erases_phone_and_notes_only_of_clients_not_seen_for_n_days(clinic_db: str) -> None:
    db = clinic_db
    await seed_clinic(db, history_days=1)
    store = await open_store(db)
    try:
        await _add_client(store, "old", "+13125559001", DAY - timedelta(days=40))
        await _add_client(store, "recent", "+13125559002", DAY - timedelta(days=10))
        at = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
        async with store.transaction() as tx:
            assert await erase_stale_clients(tx, DAY, 30, actor="cli", now=at) == 1
        # The erasure is in the event log, naming the client by id only.
        async with store.read() as q:
            [logged] = [e for e in await q.events_since(0) if e.type == "retention_erase"]
        assert (logged.actor, logged.data, logged.recorded_at) == ("cli", {"clients": ["old"], "days": 30}, at)
        assert await _contact(db, "old") == (None, "")
        assert await _contact(db, "recent") == ("+13125559002", "bites")
        assert await _contact(db, "c2") == ("+13125550102", "")  # booked today: kept
        # The visit itself stays: it is history the estimator learns from.
        async with store.read() as q:
            assert await q.visit("a-old") is not None
        async with store.transaction() as tx:
            assert await erase_stale_clients(tx, DAY, 30, actor="cli", now=at) == 0  # nothing left to erase
    finally:
        await store.close()


async def test_retention_setting_is_applied_when_the_server_starts(clinic_db: str) -> None:
    db = clinic_db
    tokens = await seed_clinic(db, history_days=1)
    async with dbq.opened(db) as store:
        await _add_client(store, "old", "+13125559001", DAY - timedelta(days=400))
    await dbq.set_settings(db, retention_days=365)
    config = Config(db_path=db, clock=ManualClock(START), secret="s", public_url="http://clinic.test")
    async with TestClient(TestServer(create_app(config))) as client:
        # The kiosk no longer finds the erased client by phone; a client booked today still is.
        h = {"Authorization": f"Bearer {tokens['kiosk']}"}
        r = await client.post("/api/kiosk/lookup", json={"phone": "312-555-9001"}, headers=h)
        assert (await r.json())["appointments"] == []
        r = await client.post("/api/kiosk/lookup", json={"phone": "312-555-0102"}, headers=h)
        assert (await r.json())["appointments"] != []
    assert await _contact(db, "old") == (None, "")


def test_retention_command_erases_and_saves_the_setting(clinic_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = clinic_db
    asyncio.run(seed_clinic(db, history_days=1))
    # The seeded day is in the past of the real clock, so with a 1-day setting every client goes.
    assert cli_main(["retention", "--days", "1", "--save", "--db", db]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["erased"] == 12 and out["saved"] is True
    assert dbq.rows_now(db, "SELECT COUNT(*) FROM clients WHERE mobile IS NOT NULL") == [(0,)]

    async def settings() -> dict[str, object]:
        async with dbq.opened(db) as store:
            return (await store.clinic()).settings

    assert asyncio.run(settings())["retention_days"] == 1
    assert cli_main(["retention", "--db", db]) == 0  # the saved setting is used
