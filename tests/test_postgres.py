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
