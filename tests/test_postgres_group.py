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


def test_the_commands_refuse_a_second_sqlite_clinic_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from server.cli import main

    db = str(tmp_path / "clinic.db")
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    assert main(["user", "add", "boss", "--group-admin", "--password-stdin", "--db", db]) == 2
    assert "group admin belongs to a group's PostgreSQL database" in capsys.readouterr().err
    assert main(["clinic", "--db", db + "?clinic=hillside", "--name", "Hillside"]) == 2
    assert "SQLite file holds one clinic" in capsys.readouterr().err
    assert main(["token", "create", "--db", db + "?clinic=*", "--role", "kiosk", "--name", "k"]) == 2
    assert "SQLite file holds one clinic" in capsys.readouterr().err


async def test_a_group_url_is_for_serve_only(pg_url: str) -> None:
    with pytest.raises(StoreUrlError, match="serve"):
        await open_store(with_params(pg_url, clinic="*"))


# -- several group-mode processes on one database ------------------------------------------------


async def _serve_group(db: str, port: int, twilio: Any) -> Any:
    """`waitroom serve --db ...?clinic=*` as a process, up once /api/health answers."""
    from tests.test_postgres_processes import serve

    return await serve(db, port, twilio, WAITROOM_PUBLIC_URL="http://vets.test")


async def test_two_group_processes_share_live_changes_and_send_each_text_once(pg_url: str) -> None:
    """Two `waitroom serve ...?clinic=*` processes over one database of two clinics: a walk-in
    taken through one is in the other's estimates, and texts queued at both clinics are each sent
    once (both processes run a worker per clinic; rows are claimed FOR UPDATE SKIP LOCKED)."""
    import asyncio
    import signal
    import socket
    import time
    from collections import Counter
    from datetime import UTC, datetime

    import aiohttp

    from notifier.outbox import NewText
    from tests.fake_twilio import FakeTwilio

    tokens = {c: await seed_clinic(pg_url, c) for c in ("riverside", "hillside")}
    stores = {c: await PgStore.open(with_params(pg_url, clinic=c)) for c in tokens}
    procs: list[Any] = []

    def port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    try:
        async with FakeTwilio(create_delay=0.02) as twilio, aiohttp.ClientSession() as http:
            ports = [port(), port()]
            for p in ports:
                procs.append(await _serve_group(with_params(pg_url, clinic="*"), p, twilio))
            a, b = (f"http://127.0.0.1:{p}" for p in ports)

            async def estimate_ids(base: str, clinic: str) -> list[str]:
                async with http.get(f"{base}/api/estimates", headers=_h(tokens[clinic]["reception"])) as r:
                    assert r.status == 200, await r.text()
                    return [e["appointment"] for e in (await r.json())["estimates"]]

            await estimate_ids(b, "hillside")  # b has computed (and cached) hillside's answer
            async with http.post(f"{a}/api/kiosk/walkin", headers=_h(tokens["hillside"]["kiosk"]), json={
                    "name": "Sam Lee", "pet": "Rex", "species": "dog", "reason": "checkup",
                    "idempotency_key": "walkin-0001"}) as r:
                assert r.status == 200, await r.text()
                (walkin,) = (await r.json())["visits"]
            deadline = time.monotonic() + 15
            while walkin["appointment"] not in await estimate_ids(b, "hillside"):
                assert time.monotonic() < deadline, "the other process never saw the walk-in"
                await asyncio.sleep(0.1)
            assert walkin["appointment"] not in await estimate_ids(b, "riverside")

            now = datetime.now(UTC)
            for clinic, store in stores.items():
                for start in range(0, 40, 10):
                    async with store.transaction() as tx:
                        await tx.insert_texts([NewText(f"{clinic}-{i}", f"+1312555{i:04d}", f"{clinic} text {i}",
                                                       "delay") for i in range(start, start + 10)], now)

            async def settled() -> bool:
                for store in stores.values():
                    async with store.read() as q:
                        if any(r.status != "sent" for r in await q.outbox_rows()):
                            return False
                return True

            deadline = time.monotonic() + 60
            while not await settled():
                assert time.monotonic() < deadline, "texts left unsent"
                await asyncio.sleep(0.2)
            sent = Counter(m["body"] for m in twilio.accepted)
            assert sorted(sent) == sorted(f"{c} text {i}" for c in stores for i in range(40))
            assert [body for body, n in sent.items() if n > 1] == []  # none twice
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        for store in stores.values():
            await store.close()


# -- pages, links and webhooks carry the clinic: the request's Host ------------------------------

RIVER, HILL = "riverside.vets.test", "hillside.vets.test"


async def test_status_and_display_links_name_their_clinic_by_host(group: Any) -> None:
    client, tokens = group
    resp = await client.post("/api/kiosk/lookup", json={"phone": HOUSEHOLD}, headers=_h(tokens["riverside"]["kiosk"]))
    ids = [a["id"] for a in (await resp.json())["appointments"]]
    body = {"phone": HOUSEHOLD, "appointments": ids, "sms_consent": True, "idempotency_key": "kiosk-key-0002"}
    resp = await client.post("/api/kiosk/checkin", json=body, headers=_h(tokens["riverside"]["kiosk"]))
    visit = (await resp.json())["visits"][0]
    # The link is riverside's own address (<clinic id>.<the group's public host>).
    assert visit["status_url"].startswith(f"http://{RIVER}/s/")
    path = visit["status_url"].removeprefix(f"http://{RIVER}")
    mine = await client.get(path, headers={"Host": RIVER})
    assert mine.status == 200 and visit["pet"] in await mine.text() and NAMES["riverside"] in await mine.text()
    # The same link at hillside's address (same visit id there, one WAITROOM_SECRET): nothing.
    other = await client.get(path, headers={"Host": HILL})
    assert other.status == 404 and visit["pet"] not in await other.text()
    # A host naming no clinic: a plain 404 page, never a 500, never a clinic's data.
    for host in ("vets.test", "nowhere.example", "127.0.0.1"):
        resp = await client.get(path, headers={"Host": host})
        assert resp.status == 404 and "No clinic at this address" in await resp.text(), host
        resp = await client.get("/console", headers={"Host": host}, allow_redirects=False)
        assert resp.status == 404, host
    # The lobby display: riverside's display token shows riverside's lobby at riverside only.
    display = tokens["riverside"]["display"]
    assert (await client.get(f"/display?token={display}", headers={"Host": RIVER})).status == 200
    assert (await client.get(f"/display?token={display}", headers={"Host": HILL})).status in (401, 403)


async def test_a_clinics_own_public_url_routes_its_pages(pg_url: str, clock: ManualClock) -> None:
    from server.cli import main

    await seed_clinic(pg_url, "riverside")
    await seed_clinic(pg_url, "hillside")
    rc = await __import__("asyncio").to_thread(main, ["clinic", "--db", with_params(pg_url, clinic="hillside"),
                                                      "--public-url", "https://Hill.Example.org/"])
    assert rc == 0
    async with TestClient(TestServer(create_app(group_config(pg_url, clock)))) as client:
        resp = await client.get("/login", headers={"Host": "hill.example.org"})
        assert resp.status == 200 and NAMES["hillside"] in await resp.text()
        resp = await client.get("/login", headers={"Host": RIVER})
        assert resp.status == 200 and NAMES["riverside"] in await resp.text()
    bad = await __import__("asyncio").to_thread(main, ["clinic", "--db", with_params(pg_url, clinic="hillside"),
                                                       "--public-url", "hill.example.org/path"])
    assert bad == 2


async def test_twilio_webhooks_are_checked_against_their_own_clinics_address(pg_url: str, clock: ManualClock) -> None:
    from notifier.twilio_signature import compute_signature
    from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN

    for c in ("riverside", "hillside"):
        await seed_clinic(pg_url, c)
    config = group_config(pg_url, clock, sms_provider="twilio", twilio_account_sid=ACCOUNT_SID,
                          twilio_auth_token=AUTH_TOKEN, twilio_from="+13125550100",
                          twilio_base_url="http://127.0.0.1:9", run_notifier=False)
    async with TestClient(TestServer(create_app(config))) as client:
        params = {"MessageSid": "SM" + "1" * 32, "From": "+13125550102", "To": "+13125550100", "Body": "1",
                  "AccountSid": ACCOUNT_SID}
        signed = compute_signature(AUTH_TOKEN, f"http://{RIVER}/sms/inbound", params)
        # Signed for riverside's address: taken at riverside, refused at hillside (a replay there).
        resp = await client.post("/sms/inbound", data=params, headers={"X-Twilio-Signature": signed, "Host": HILL})
        assert resp.status == 403
        resp = await client.post("/sms/inbound", data=params, headers={"X-Twilio-Signature": signed, "Host": RIVER})
        assert resp.status == 200
        resp = await client.post("/sms/inbound", data=params, headers={"X-Twilio-Signature": signed,
                                                                       "Host": "nowhere.example"})
        assert resp.status == 404


# -- staff accounts: one clinic's, and the group's ----------------------------------------------


async def _log_in(client: Any, host: str, name: str, password: str) -> int:
    resp = await client.get("/login", headers={"Host": host})
    text = await resp.text()
    csrf = text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    resp = await client.post("/login", headers={"Host": host}, allow_redirects=False,
                             data={"csrf": csrf, "name": name, "password": password, "next": "/console"})
    return int(resp.status)


async def _add_user(pg_url: str, clinic: str, name: str, *, group_admin: bool = False) -> None:
    from datetime import UTC, datetime

    from server.web.auth import create_user

    store = await PgStore.open(with_params(pg_url, clinic=clinic))
    try:
        async with store.transaction() as tx:
            await create_user(tx, name, "password-" + name, datetime.now(UTC), group_admin=group_admin)
    finally:
        await store.close()


async def test_staff_of_one_clinic_cannot_use_anothers_console_nor_the_group_page(group: Any, pg_url: str) -> None:
    client, _ = group
    await _add_user(pg_url, "riverside", "ana")
    assert await _log_in(client, HILL, "ana", "password-ana") == 401  # not an account there
    assert await _log_in(client, RIVER, "ana", "password-ana") == 303
    resp = await client.get("/console", headers={"Host": RIVER}, allow_redirects=False)
    assert resp.status == 200 and NAMES["riverside"] in await resp.text()
    assert 'id="group-link"' not in await resp.text()
    # The same browser (its riverside session cookie) at hillside's address: the sign-in page.
    resp = await client.get("/console", headers={"Host": HILL}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")
    resp = await client.get("/group", headers={"Host": RIVER}, allow_redirects=False)
    assert resp.status == 403


async def test_a_group_admin_signs_in_at_every_clinic_and_sees_them_all(group: Any, pg_url: str) -> None:
    client, tokens = group
    await _add_user(pg_url, "riverside", "boss", group_admin=True)
    resp = await client.post("/api/events", headers=_h(tokens["hillside"]["reception"]),
                             json={"type": "checkin", "appointment": A1})
    assert resp.status == 201
    for host, clinic in ((HILL, "hillside"), (RIVER, "riverside")):
        assert await _log_in(client, host, "boss", "password-boss") == 303
        resp = await client.get("/console", headers={"Host": host}, allow_redirects=False)
        assert resp.status == 200 and NAMES[clinic] in await resp.text()
        assert 'id="group-link"' in await resp.text()
    resp = await client.get("/group", headers={"Host": RIVER})
    assert resp.status == 200
    page = await resp.text()
    for clinic in ("riverside", "hillside"):
        assert NAMES[clinic] in page and f"http://{clinic}.vets.test/console" in page
    row = page.split('id="clinic-hillside"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">1</td>' in row  # hillside's one client checked in, waiting
