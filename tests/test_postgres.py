"""The PostgreSQL backend as a clinic group runs it (issue 13): `--db postgresql://...` on the
command line, clinics sharing one database without seeing each other. The store contract itself
runs on PostgreSQL in tests/test_store_contract.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from server.domain import Visit
from server.store import Clinic, SqliteStore, open_store
from server.store.postgres import PgStore, split_url
from tests.pg_cluster import with_params

EXE = str(Path(sys.executable).parent / "waitroom")
AT = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
DAY = date(2026, 3, 2)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)


def _post(url: str, token: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def _wait_up(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1):
                return
        except OSError:
            assert proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)


def test_the_clinic_parameter_is_ours_and_the_rest_goes_to_the_driver() -> None:
    assert split_url("postgresql://u@h:5/db?clinic=riverside&search_path=s1") == (
        "postgresql://u@h:5/db?search_path=s1", "riverside")
    assert split_url("postgres://h/db") == ("postgres://h/db", "main")


async def test_open_store_picks_the_backend_from_the_db_argument(tmp_path: Path, pg_url: str) -> None:
    for spec in (f"sqlite:{tmp_path / 'a.db'}", str(tmp_path / "b.db")):
        s = await open_store(spec)
        try:
            assert isinstance(s, SqliteStore)
        finally:
            await s.close()
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()
    s = await open_store(pg_url)
    try:
        assert isinstance(s, PgStore) and s.clinic_id == "main"
    finally:
        await s.close()


async def test_two_clinics_in_one_database_never_see_each_others_rows(pg_url: str) -> None:
    a = await PgStore.open(with_params(pg_url, clinic="riverside"))
    b = await PgStore.open(with_params(pg_url, clinic="hillside"))
    try:
        for store, name in ((a, "Riverside"), (b, "Hillside")):
            async with store.transaction() as tx:
                await tx.set_clinic(Clinic(name, "America/Chicago"))
                await tx.save_vet("v1", f"Dr. {name}")  # the same PMS ids in both clinics
                await tx.add_arrived_visit(Visit("w1", "walkin", "v1", None, 20, arrived=AT, pet=name), DAY)
                await tx.record_event("walkin", AT, "w1", {"vet": "v1"}, "token:kiosk", AT)
        async with a.transaction() as tx:
            token_a = await tx.create_token("reception", "desk", AT)
            await tx.record_start("w1", AT + timedelta(minutes=5))
            await tx.add_staff_user("ann", "scrypt$x", AT)
        async with b.read() as q:
            assert (await q.clinic()).name == "Hillside"
            assert await q.token_role(token_a) is None  # a's token means nothing to b
            assert await q.staff_password("ann") is None
            day = await q.visits_for_day(DAY)
            assert day.visits["w1"].pet == "Hillside" and day.visits["w1"].started is None
            assert [e.appointment for e in await q.events_since(0)] == ["w1"]  # only its own log
            assert await q.vet_names() == {"v1": "Dr. Hillside"}
        async with a.read() as q:
            assert await q.token_role(token_a) == ("reception", "desk")
            assert (await q.visits_for_day(DAY)).visits["w1"].started == AT + timedelta(minutes=5)
    finally:
        await a.close()
        await b.close()


def test_serve_with_a_postgresql_url_takes_a_walk_in_and_estimates_it(pg_url: str) -> None:
    """The whole app on PostgreSQL: `waitroom clinic` / `token` / `serve` with `--db postgresql://...`."""
    env = {**os.environ, "WAITROOM_SECRET": "test-secret"}
    subprocess.run([EXE, "clinic", "--db", pg_url, "--name", "Riverside", "--timezone", "UTC"], check=True, env=env)

    async def vets() -> None:
        s = await PgStore.open(pg_url)
        try:
            async with s.transaction() as tx:
                await tx.save_vet("v1", "Dr. One")
        finally:
            await s.close()

    import asyncio
    asyncio.run(vets())
    kiosk = subprocess.run([EXE, "token", "create", "--role", "kiosk", "--name", "lobby", "--db", pg_url],
                           capture_output=True, text=True, check=True, env=env).stdout.strip()
    desk = subprocess.run([EXE, "token", "create", "--role", "reception", "--name", "desk", "--db", pg_url],
                          capture_output=True, text=True, check=True, env=env).stdout.strip()
    port = _port()
    proc = subprocess.Popen([EXE, "serve", "--db", pg_url, "--port", str(port)], stderr=subprocess.DEVNULL,
                            text=True, env=env)
    try:
        _wait_up(port, proc)
        base = f"http://127.0.0.1:{port}"
        got = _post(f"{base}/api/kiosk/walkin", kiosk, {"name": "Sam Lee", "pet": "Rex", "species": "dog",
                                                         "reason": "checkup", "idempotency_key": "walkin-0001"})
        (visit,) = got["visits"]
        assert visit["pet"] == "Rex" and visit["estimate"]["start"]
        estimates = _get(f"{base}/api/estimates", desk)["estimates"]
        assert [e["appointment"] for e in estimates] == [visit["appointment"]]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_backup_of_a_postgresql_database_points_to_pg_dump() -> None:
    out = subprocess.run([EXE, "backup", "--db", "postgresql://nobody@127.0.0.1:1/none", "/tmp/x.db"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "pg_dump" in out.stderr


async def _a_clinic_with_history(db: Path, name: str) -> None:
    """A seeded demo day with 10 days of history, plus what references generated ids: texts (one
    naming two visits), an MMS reply, an acknowledged text and an undo, a staff session."""
    from notifier.outbox import AlsoAbout, NewText
    from server.demo import seed_day

    store = await SqliteStore.open(str(db))
    try:
        async with store.transaction() as tx:
            await seed_day(tx, DAY, "America/Chicago", history_days=10, token_prefix=name)
            day = await tx.visits_for_day(DAY)
            first, second = sorted(day.visits)[:2]
            told = (AT, AT, AT + timedelta(minutes=30))
            (row,) = await tx.insert_texts([NewText("d-1", "+13125550199", "running late", "delay", visit_id=first,
                                                    told=told, also=(AlsoAbout(second, "delay", *told),))], AT)
            await tx.record_inbound("MM1", "+13125550199", None, "see photo", "other", True, AT)
            await tx.record_inbound_media("MM1", [("https://api.twilio.com/m/1", "image/jpeg")])
            (msg,) = await tx.reception_inbox(False)
            await tx.record_event("reply", AT, first, {"inbound": msg["id"], "outbox_id": row}, "sms", AT)
            checkin = await tx.record_event("checkin", AT, first, {}, "user:ann", AT)
            await tx.record_event("undo", AT, first, {"seq": checkin, "type": "checkin"}, "user:ann", AT)
            await tx.add_staff_user("ann", "scrypt$x", AT)
            user_id, _ = await tx.staff_password("ann") or (0, "")
            await tx.open_staff_session(name * 8, user_id, "csrf", AT, AT + timedelta(hours=8))
    finally:
        await store.close()


async def test_db_copy_moves_a_clinic_and_checks_counts_log_and_days(tmp_path: Path, pg_url: str) -> None:
    import asyncio

    db, other = tmp_path / "clinic.db", tmp_path / "other.db"
    await _a_clinic_with_history(db, "riverside")
    await _a_clinic_with_history(other, "hillside")
    riverside, hillside = with_params(pg_url, clinic="riverside"), with_params(pg_url, clinic="hillside")

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(subprocess.run, [EXE, "db", "copy", *args], capture_output=True, text=True)

    out = await run("--from", str(db), "--to", riverside)
    assert out.returncode == 0, out.stderr
    assert "row counts equal" in out.stdout
    counts = {line.split()[0]: (int(line.split()[1]), int(line.split()[3])) for line in out.stdout.splitlines()
              if "->" in line}
    assert counts["appointments"][0] > 50 and counts["events"][0] >= 3 and counts["inbound_media"] == (1, 1)
    assert all(a == b for a, b in counts.values())
    # A second clinic into the same database: every generated id is taken already, so the copy
    # renumbers them and rewrites what points at them.
    assert (await run("--from", f"sqlite:{other}", "--to", hillside)).returncode == 0
    refused = await run("--from", str(other), "--to", hillside)
    assert refused.returncode == 2 and "already holds" in refused.stderr
    # The first file again, into a new clinic: its tokens belong to riverside already.
    refused = await run("--from", str(db), "--to", with_params(pg_url, clinic="thirdside"))
    assert refused.returncode == 2 and "tokens" in refused.stderr and "nothing was copied" in refused.stderr

    src, dst = await SqliteStore.open(str(other)), await PgStore.open(hillside)
    try:
        async with src.read() as a, dst.read() as b:
            assert (await a.clinic()).name == (await b.clinic()).name
            old, new = await a.events_since(0), await b.events_since(0)
            assert [e.type for e in old] == [e.type for e in new]
            undo = new[-1]
            assert undo.type == "undo" and undo.data["seq"] == new[-2].seq != old[-2].seq
            assert await b.undone_seqs() == {new[-2].seq}
            (msg,) = await b.reception_inbox(False)
            assert msg["media"] == [("https://api.twilio.com/m/1", "image/jpeg")]
            reply = next(e for e in new if e.type == "reply")
            assert reply.data["inbound"] == msg["id"]
            (row,) = await b.outbox_rows()
            assert reply.data["outbox_id"] == row.id
            told = await b.sent_texts(None, ["delay"])
            assert len(told) == 2  # the household's text still counts for both visits
            session = await b.staff_session("hillside" * 8)
            assert session is not None and session.name == "ann"
    finally:
        await src.close()
        await dst.close()


async def test_the_postgresql_schema_has_every_sqlite_table_and_column_and_the_copy_knows_them(
        pg_url: str) -> None:
    """A migration added to one backend only fails here (and `db copy` would refuse the file)."""
    from server.store.copy import TABLES, sqlite_tables

    src, dst = await SqliteStore.open(":memory:"), await PgStore.open(pg_url)
    try:
        tables = await sqlite_tables(src)
        assert sorted(tables) == sorted(t for t, _ in TABLES)
        async with dst.read() as q:
            conn = q._db
            for table in tables:
                want = {str(r[1]) for r in await src.conn.execute_fetchall(f"PRAGMA table_info({table})")}
                have = {r[0] for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
                    "AND table_schema = current_schema()", table)}
                # PostgreSQL's own: the clinic, and which process claimed a text it is sending.
                assert have == want | {"clinic_id"} | ({"claimed_by"} if table == "outbox" else set()), table
    finally:
        await src.close()
        await dst.close()
