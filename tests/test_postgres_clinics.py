"""Clinics of one group in one PostgreSQL database, each served by its own `create_app` (issue 13
item 2, first part): the same PMS ids in both, one shared WAITROOM_SECRET, and still one clinic's
tokens, status links and display never read the other's day. (One server process serves one
clinic, `--db postgresql://...?clinic=ID`; the group runs a process or more per clinic.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config import Config, ManualClock
from server.demo import seed_day
from server.keys import STORE
from server.store.postgres import PgStore
from tests.conftest import DAY
from tests.pg_cluster import with_params

HOUSEHOLD = "(312) 555-0102"  # James Carter: Max and Bella (in both clinics)


async def _clinic(url: str, prefix: str, clock: ManualClock) -> tuple[TestClient[Any, Any], dict[str, str]]:
    store = await PgStore.open(url)
    try:
        async with store.transaction() as tx:
            tokens = await seed_day(tx, DAY, "America/Chicago", history_days=3, token_prefix=prefix)
    finally:
        await store.close()
    config = Config(db_path=url, clock=clock, secret="one-secret-for-the-group", public_url="http://clinic.test")
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(config)))
    await client.start_server()
    return client, tokens


@pytest.fixture
async def two_clinics(pg_url: str, clock: ManualClock) -> AsyncIterator[tuple[Any, Any]]:
    a = await _clinic(with_params(pg_url, clinic="riverside"), "riverside", clock)
    b = await _clinic(with_params(pg_url, clinic="hillside"), "hillside", clock)
    try:
        yield a, b
    finally:
        await a[0].close()
        await b[0].close()


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_one_clinics_tokens_open_nothing_at_another(two_clinics: tuple[Any, Any]) -> None:
    (a, tokens_a), (b, tokens_b) = two_clinics
    routes = [("GET", "/api/estimates", "reception", None), ("GET", "/api/estimates", "display", None),
              ("GET", "/api/changes?since=0", "pms", None), ("GET", "/api/appointments/a1", "pms", None),
              ("POST", "/api/kiosk/lookup", "kiosk", {"phone": HOUSEHOLD}),
              ("POST", "/api/events", "reception", {"type": "checkin", "appointment": "a1"})]
    for method, path, role, body in routes:
        # The same request: answered at its own clinic (the control), refused at the other.
        for client, token, own in ((a, tokens_a[role], True), (b, tokens_a[role], False),
                                   (b, tokens_b[role], True), (a, tokens_b[role], False)):
            resp = await client.request(method, path, json=body, headers=_h(token))
            if own:
                assert resp.status in (200, 201, 404), (path, role, await resp.text())
            else:
                assert resp.status == 401, (path, role, resp.status)
    resp = await b.get(f"/display?token={tokens_a['display']}")
    assert resp.status in (401, 403)


async def test_a_status_link_opens_its_own_clinics_visit_only(two_clinics: tuple[Any, Any]) -> None:
    (a, tokens_a), (b, _) = two_clinics
    resp = await a.post("/api/kiosk/lookup", json={"phone": HOUSEHOLD}, headers=_h(tokens_a["kiosk"]))
    ids = [x["id"] for x in (await resp.json())["appointments"]]
    body = {"phone": HOUSEHOLD, "appointments": ids, "sms_consent": True, "idempotency_key": "kiosk-key-0001"}
    resp = await a.post("/api/kiosk/checkin", json=body, headers=_h(tokens_a["kiosk"]))
    assert resp.status == 200
    visit = (await resp.json())["visits"][0]
    link = visit["status_url"].removeprefix("http://clinic.test")
    mine = await a.get(link)
    assert mine.status == 200 and visit["pet"] in await mine.text()
    # Hillside has a visit of the same id, and the group shares one WAITROOM_SECRET: the link
    # is Riverside's all the same (each clinic signs with a key of its own).
    other = await b.get(link)
    assert other.status == 404 and visit["pet"] not in await other.text()


async def test_a_change_made_through_one_process_shows_at_the_others_at_once(pg_url: str, clock: ManualClock) -> None:
    """Two servers of one clinic (as two processes would be): a walk-in taken by one is in the
    other's estimates and wakes its live pages, though the other had cached its answer."""
    url = with_params(pg_url, clinic="riverside")
    a, tokens = await _clinic(url, "riverside", clock)
    config = Config(db_path=url, clock=clock, secret="one-secret-for-the-group", public_url="http://clinic.test")
    b: TestClient[Any, Any] = TestClient(TestServer(create_app(config)))
    await b.start_server()
    try:
        before = await (await b.get("/api/estimates", headers=_h(tokens["reception"]))).json()
        store_b = b.app[STORE]
        seen = store_b.version
        resp = await a.post("/api/kiosk/walkin", headers=_h(tokens["kiosk"]), json={
            "name": "Sam Lee", "pet": "Rex", "species": "dog", "reason": "checkup", "idempotency_key": "walkin-0001"})
        assert resp.status == 200
        (walkin,) = (await resp.json())["visits"]
        assert await store_b.wait_for_change(seen, 10.0)  # NOTIFY reached the other server
        after = await (await b.get("/api/estimates", headers=_h(tokens["reception"]))).json()
        ids = [e["appointment"] for e in after["estimates"]]
        assert walkin["appointment"] in ids and walkin["appointment"] not in str(before)
    finally:
        await b.close()
        await a.close()


async def test_a_kiosk_tokens_budget_holds_across_the_clinics_processes(pg_url: str, clock: ManualClock) -> None:
    """Four lookups a minute: a stolen kiosk token spread over two servers of the clinic gets four
    in all, not four at each."""
    url = with_params(pg_url, clinic="riverside")
    store = await PgStore.open(url)
    try:
        async with store.transaction() as tx:
            tokens = await seed_day(tx, DAY, "America/Chicago", history_days=0, token_prefix="riverside")
    finally:
        await store.close()
    servers = []
    for _ in range(2):
        config = Config(db_path=url, clock=clock, secret="s", public_url="http://clinic.test",
                        kiosk_lookups_per_minute=4)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(config)))
        await client.start_server()
        servers.append(client)
    try:
        statuses = []
        for i in range(8):
            resp = await servers[i % 2].post("/api/kiosk/lookup", json={"phone": HOUSEHOLD},
                                             headers=_h(tokens["kiosk"]))
            statuses.append(resp.status)
        assert statuses == [200] * 4 + [429] * 4
    finally:
        for client in servers:
            await client.close()


async def test_delay_texts_and_replies_end_to_end_on_postgresql(pg_url: str, clock: ManualClock) -> None:
    """tests/test_texts_e2e.py's first steps on PostgreSQL: an emergency texts the affected
    clients once each (worker -> fake Twilio), a reply "1" keeps the place (once, though Twilio
    retries the webhook), a "2" gets the reschedule link."""
    from notifier.twilio_signature import compute_signature
    from tests.conftest import eventually
    from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

    url = with_params(pg_url, clinic="riverside")
    store = await PgStore.open(url)
    try:
        async with store.transaction() as tx:
            tokens = await seed_day(tx, DAY, "America/Chicago", history_days=10, token_prefix="riverside")
    finally:
        await store.close()
    clock.advance(minutes=15)  # 08:05: texts are never sent before 08:00 client time
    async with FakeTwilio() as twilio:
        config = Config(db_path=url, clock=clock, secret="s", public_url="http://clinic.test", sms_provider="twilio",
                        twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN, twilio_from="+13125550100",
                        twilio_base_url=twilio.base_url)
        async with TestClient(TestServer(create_app(config))) as client:
            store_a = client.app[STORE]

            async def settled() -> None:
                async def drained() -> bool:
                    async with store_a.read() as q:
                        return not [r for r in await q.outbox_rows() if r.status in ("queued", "sending")]
                await eventually(drained, "the notifier worker sent its queue")

            resp = await client.post("/api/events", headers=_h(tokens["reception"]),
                                     json={"type": "emergency", "id": "e1", "vet": "v1", "expected_min": 90})
            assert resp.status == 201, await resp.text()
            await settled()
            assert twilio.accepted, "an emergency pushing Dr. Ruiz 90 min behind texted nobody"
            assert all("Ruiz" in m["body"] and "http://clinic.test/r/" in m["body"] for m in twilio.accepted)
            assert not {m["to"] for m in twilio.accepted} & {"+13125550103", "+13125550109"}  # said no to texts
            pairs = [(m["to"], m["body"]) for m in twilio.accepted]
            assert len(pairs) == len(set(pairs)), "a text was sent twice"
            async with store_a.read() as q:
                assert {r.status for r in await q.outbox_rows()} == {"sent"}
            number = twilio.accepted[0]["to"]

            async def inbound(body: str, sid: str) -> int:
                params = {"MessageSid": sid, "From": number, "To": "+13125550100", "Body": body,
                          "AccountSid": ACCOUNT_SID}
                signature = compute_signature(AUTH_TOKEN, "http://clinic.test/sms/inbound", params)
                r = await client.post("/sms/inbound", data=params, headers={"X-Twilio-Signature": signature})
                return r.status

            assert await inbound(" ok! ", "SM" + "1" * 32) == 200
            assert await inbound("1", "SM" + "1" * 32) == 200  # Twilio retried: same message id
            async with store_a.read() as q:
                replies = [e for e in await q.events_since(0, types=("reply",))]
            assert len(replies) == 1 and "keep" in str(replies[0].data)
            await settled()  # the acknowledgement of the "ok" has gone out
            before = len(twilio.bodies_to(number))
            assert await inbound("2", "SM" + "2" * 32) == 200
            await settled()
            answers = twilio.bodies_to(number)[before:]
            assert len(answers) == 1 and "http://clinic.test/r/" in answers[0]
