"""`waitroom sync` as clinic staff run it: set up, one round against a fake ezyVet on loopback,
status, one loop per clinic, and secrets kept out of the database and the output."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from server.connectors.cli import sync_lock
from server.store import Clinic, open_store
from tests import dbq
from tests.fake_ezyvet import CLIENT_ID, CLIENT_SECRET, PARTNER_ID, FakeEzyVet

TZ = ZoneInfo("America/Chicago")


async def waitroom(*args: str, secret: str | None = CLIENT_SECRET) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAITROOM_")}
    if secret is not None:
        env["WAITROOM_EZYVET_CLIENT_SECRET"] = secret
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "server.cli", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def make_db(db: str) -> str:
    store = await open_store(db)
    async with store.transaction() as tx:
        await tx.set_clinic(Clinic("Test Vets", "America/Chicago", "US"))
    await store.close()
    return db


async def test_set_up_sync_once_and_status(clinic_db: str) -> None:
    db = await make_db(clinic_db)
    async with FakeEzyVet() as fake:
        fake.add_client("9", "Maria", "Lopez", "+1 312 555 0101")
        fake.add_pet("55", "Bella", "9")
        soon = datetime.now(TZ) + timedelta(hours=1)
        fake.add_appointment("101", soon, animal="55", contact="9")
        fake.add_appointment("102", soon + timedelta(minutes=20), animal="55", contact="9")

        code, _, err = await waitroom("sync", "--pms", "ezyvet", "--db", db, "--configure",
                                      f"client_secret={CLIENT_SECRET}")
        assert code == 2 and "secrets are not kept in the database" in err
        code, out, _ = await waitroom("sync", "--pms", "ezyvet", "--db", db, "--configure",
                                      f"base_url={fake.base_url}", "--configure", f"partner_id={PARTNER_ID}",
                                      "--configure", f"client_id={CLIENT_ID}", "--configure", "days=1")
        assert code == 0 and json.loads(out)["partner_id"] == PARTNER_ID

        code, out, err = await waitroom("sync", "--pms", "ezyvet", "--db", db, "--once")
        assert code == 0, err
        assert "ezyVet: 2 fetched, 2 imported, 0 cancelled" in out
        assert CLIENT_SECRET not in out + err

        code, out, _ = await waitroom("sync", "--pms", "ezyvet", "--db", db, "--status")
        status = json.loads(out)
        assert code == 0 and status["last_error"] is None and status["progress"]["imported"] == 2

        with sync_lock(db):  # a sync loop already runs for this clinic
            code, _, err = await waitroom("sync", "--pms", "ezyvet", "--db", db, "--once")
        assert code == 2 and "another `waitroom sync` is running" in err
    stored = await dbq.everything(db)
    assert CLIENT_SECRET.encode() not in stored


async def test_not_set_up_says_what_is_missing(clinic_db: str) -> None:
    db = await make_db(clinic_db)
    code, _, err = await waitroom("sync", "--pms", "ezyvet", "--db", db, "--once", secret=None)
    assert code == 2 and "partner_id, client_id, WAITROOM_EZYVET_CLIENT_SECRET missing" in err
    code, _, err = await waitroom("sync", "--pms", "provet", "--db", db, "--once", secret=None)
    assert code == 2 and "provet_id (or base_url) missing" in err


def test_the_sync_unit_runs_one_sync_per_instance_with_secrets_from_its_env_file(tmp_path: Path) -> None:
    import re
    import shutil
    import subprocess

    root = Path(__file__).resolve().parent.parent
    text = (root / "waitroom-sync@.service").read_text()
    body = text.split("[Unit]", 1)[1]
    assert "EnvironmentFile=/etc/waitroom/sync.env" in body and "SECRET=" not in body and "TOKEN=" not in body
    assert "waitroom sync --pms %i --db ${WAITROOM_DB}" in body
    assert "RestartPreventExitStatus=2" in body  # not set up / already running: restarting will not help
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    unit = tmp_path / "waitroom-sync@.service"
    unit.write_text(re.sub(r"^ExecStart=.*$", "ExecStart=/bin/true", text, flags=re.M))
    instance = tmp_path / "waitroom-sync@ezyvet.service"
    instance.symlink_to(unit)
    proc = subprocess.run([analyze, "verify", "--man=no", str(instance)], capture_output=True, text=True, timeout=60)
    problems = [line for line in proc.stderr.splitlines() if "waitroom-sync" in line]
    assert proc.returncode == 0 and not problems, proc.stderr


def test_the_lock_is_per_clinic_and_names_no_password() -> None:
    from server.connectors.cli import lock_path

    assert lock_path("/var/lib/waitroom/clinic.db") == "/var/lib/waitroom/clinic.db.sync.lock"
    assert lock_path("sqlite:/srv/c.db") == "/srv/c.db.sync.lock"
    a = lock_path("postgresql://wr:pw1@db.local:5432/group?clinic=north")
    assert a == lock_path("postgresql://wr:other-pw@db.local:5432/group?clinic=north")  # same clinic
    assert a != lock_path("postgresql://wr:pw1@db.local:5432/group?clinic=south")
    assert "pw1" not in a


async def test_sync_once_into_a_postgresql_clinic(pg_url: str) -> None:
    from server.store import open_store

    db = pg_url + "&clinic=north" if "?" in pg_url else pg_url + "?clinic=north"
    store = await open_store(db)
    async with store.transaction() as tx:
        await tx.set_clinic(Clinic("North Vets", "America/Chicago", "US"))
    await store.close()
    async with FakeEzyVet() as fake:
        fake.add_client("9", "Maria", "Lopez", "+1 312 555 0101")
        fake.add_pet("55", "Bella", "9")
        fake.add_appointment("101", datetime.now(TZ) + timedelta(hours=1), animal="55", contact="9")
        for setting in (f"base_url={fake.base_url}", f"partner_id={PARTNER_ID}", f"client_id={CLIENT_ID}"):
            code, _, err = await waitroom("sync", "--pms", "ezyvet", "--db", db, "--configure", setting)
            assert code == 0, err
        code, out, err = await waitroom("sync", "--pms", "ezyvet", "--db", db, "--once")
        assert code == 0 and "1 imported" in out, err
    store = await open_store(db)
    try:
        async with store.read() as q:
            found = await q.visit("ezyvet:101")
            state = await q.pms_state("ezyvet")
    finally:
        await store.close()
    assert found is not None and found.status == "booked" and state.last_error is None
