"""Group mode (issue 13 item 2): one server process serving every clinic of a PostgreSQL database
(`--db postgresql://...?clinic=*`). An API request goes to the clinic that owns its token; the
clinics share PMS ids ("a1") and a household phone, and still one clinic's token never reads or
changes another's day. SQLite holds one clinic and refuses `?clinic=`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config import Config, ManualClock
from server.demo import seed_day
from server.store import open_store
from server.store.interface import StoreUrlError
from server.store.postgres import PgStore
from tests.conftest import DAY
from tests.pg_cluster import with_params

A1 = f"{DAY.isoformat()}-v1-0800"  # the same visit id at every clinic
HOUSEHOLD = "(312) 555-0102"  # James Carter: Max and Bella, at every clinic
NAMES = {"riverside": "Riverside Animal Clinic", "hillside": "Hillside Vets", "lakeside": "Lakeside Pet Hospital"}


async def seed_clinic(pg_url: str, clinic_id: str, *, history_days: int = 3) -> dict[str, str]:
    """The demo day at one clinic of the group's database, under the clinic's own name."""
    store = await PgStore.open(with_params(pg_url, clinic=clinic_id))
    try:
        async with store.transaction() as tx:
            tokens = await seed_day(tx, DAY, "America/Chicago", history_days=history_days, token_prefix=clinic_id)
            await tx.set_clinic(replace(await tx.clinic(), name=NAMES.get(clinic_id, clinic_id)))
    finally:
        await store.close()
    return tokens


def group_config(pg_url: str, clock: ManualClock, **kw: Any) -> Config:
    return Config(db_path=with_params(pg_url, clinic="*"), clock=clock, secret="one-secret-for-the-group",
                  public_url="http://vets.test", **kw)


@pytest.fixture
async def group(pg_url: str, clock: ManualClock) -> AsyncIterator[tuple[Any, dict[str, dict[str, str]]]]:
    tokens = {c: await seed_clinic(pg_url, c) for c in ("riverside", "hillside")}
    async with TestClient(TestServer(create_app(group_config(pg_url, clock)))) as client:
        yield client, tokens


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_each_token_reaches_its_own_clinic_through_one_server(group: Any) -> None:
    client, tokens = group
    for clinic_id in ("riverside", "hillside"):
        resp = await client.get("/api/kiosk/clinic", headers=_h(tokens[clinic_id]["kiosk"]))
        assert resp.status == 200 and (await resp.json())["name"] == NAMES[clinic_id]
    # A write with riverside's token lands at riverside only, though hillside has that visit id too.
    resp = await client.post("/api/events", headers=_h(tokens["riverside"]["reception"]),
                             json={"type": "checkin", "appointment": A1})
    assert resp.status == 201, await resp.text()
    river = await (await client.get(f"/api/appointments/{A1}", headers=_h(tokens["riverside"]["pms"]))).json()
    hill = await (await client.get(f"/api/appointments/{A1}", headers=_h(tokens["hillside"]["pms"]))).json()
    assert river["arrived"] and not hill["arrived"]
    changes = await (await client.get("/api/changes?since=0", headers=_h(tokens["hillside"]["pms"]))).json()
    assert all(c["appointment"] != A1 for c in changes["changes"])
    # A walk-in at hillside is in hillside's estimates, not riverside's.
    resp = await client.post("/api/kiosk/walkin", headers=_h(tokens["hillside"]["kiosk"]), json={
        "name": "Sam Lee", "pet": "Rex", "species": "dog", "reason": "checkup", "idempotency_key": "walkin-0001"})
    assert resp.status == 200, await resp.text()
    (walkin,) = (await resp.json())["visits"]
    est = {c: [e["appointment"] for e in (await (await client.get(
        "/api/estimates", headers=_h(tokens[c]["display"]))).json())["estimates"]] for c in ("riverside", "hillside")}
    assert walkin["appointment"] in est["hillside"] and walkin["appointment"] not in est["riverside"]


async def test_a_shared_household_phone_finds_only_the_tokens_clinic(group: Any) -> None:
    client, tokens = group
    resp = await client.post("/api/kiosk/lookup", json={"phone": HOUSEHOLD}, headers=_h(tokens["hillside"]["kiosk"]))
    ids = [a["id"] for a in (await resp.json())["appointments"]]
    body = {"phone": HOUSEHOLD, "appointments": ids, "sms_consent": True, "idempotency_key": "kiosk-key-0001"}
    resp = await client.post("/api/kiosk/checkin", json=body, headers=_h(tokens["hillside"]["kiosk"]))
    assert resp.status == 200
    # Hillside's check-in left riverside's same visits of the same household untouched.
    for aid in ids:
        river = await (await client.get(f"/api/appointments/{aid}", headers=_h(tokens["riverside"]["pms"]))).json()
        hill = await (await client.get(f"/api/appointments/{aid}", headers=_h(tokens["hillside"]["pms"]))).json()
        assert hill["arrived"] and not river["arrived"]


async def test_unknown_revoked_or_wrong_role_tokens_are_refused(group: Any) -> None:
    client, tokens = group
    resp = await client.get("/api/estimates", headers=_h("wr_reception_not-a-token"))
    assert resp.status == 401
    resp = await client.get("/api/estimates")
    assert resp.status == 401
    resp = await client.post("/api/events", headers=_h(tokens["riverside"]["kiosk"]),
                             json={"type": "checkin", "appointment": A1})
    assert resp.status == 403
    assert (await client.get("/api/health")).status == 200  # public, whatever the clinic


async def test_a_clinic_added_while_the_group_runs_is_served_at_once(group: Any, pg_url: str) -> None:
    client, _ = group
    tokens = await seed_clinic(pg_url, "lakeside", history_days=0)
    resp = await client.get("/api/kiosk/clinic", headers=_h(tokens["kiosk"]))
    assert resp.status == 200 and (await resp.json())["name"] == NAMES["lakeside"]
    resp = await client.post("/api/kiosk/lookup", json={"phone": HOUSEHOLD}, headers=_h(tokens["kiosk"]))
    assert resp.status == 200 and (await resp.json())["appointments"]


async def test_sqlite_holds_one_clinic_and_says_so(tmp_path: Path, clock: ManualClock) -> None:
    db = str(tmp_path / "clinic.db")
    for spec in (db + "?clinic=*", db + "?clinic=hillside"):
        with pytest.raises(StoreUrlError, match="SQLite file holds one clinic"):
            create_app(Config(db_path=spec, clock=clock))
        with pytest.raises(StoreUrlError, match="SQLite file holds one clinic"):
            await open_store(spec)


def test_the_commands_refuse_a_second_sqlite_clinic_in_one_line(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import main

    db = str(tmp_path / "clinic.db")
    assert main(["clinic", "--db", db + "?clinic=hillside", "--name", "Hillside"]) == 2
    assert "SQLite file holds one clinic" in capsys.readouterr().err
    assert main(["serve", "--db", db + "?clinic=*"]) == 2
    assert "SQLite file holds one clinic" in capsys.readouterr().err


async def test_a_group_url_is_for_serve_only(pg_url: str) -> None:
    with pytest.raises(StoreUrlError, match="serve"):
        await open_store(with_params(pg_url, clinic="*"))
