"""Twilio webhooks: signed requests are handled, forged ones get 403; status callbacks
from the fake Twilio (signed by the official package) update the outbox row."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from notifier import outbox
from notifier.messages import ClinicInfo
from notifier.outbox import NewText
from notifier.providers import TwilioProvider
from notifier.replies import InboundReply, ReplyKind, ReplyOutcome
from notifier.webhooks import make_webhook_routes
from notifier.worker import Worker, WorkerSettings
from tests import dbq
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, OutboxDb, open_outbox_db, sqlite_transaction

PUBLIC = "https://clinic.example.com"


class Hooks:
    def __init__(self, conn: OutboxDb) -> None:
        self.conn = conn
        self.replies: list[InboundReply] = []
        self.woken = 0

    async def on_reply(self, conn: OutboxDb, reply: InboundReply) -> ReplyOutcome:
        self.replies.append(reply)
        return ReplyOutcome(visit_id="a1", link="https://clinic.example.com/r/T" if
                            reply.kind is ReplyKind.RESCHEDULE else None)

    def wake(self) -> None:
        self.woken += 1


@pytest.fixture
async def app(clinic_db: str) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Hooks]]:
    conn = await open_outbox_db(clinic_db)
    hooks = Hooks(conn)
    application = web.Application()
    application.add_routes(make_webhook_routes(
        transaction=sqlite_transaction(conn), auth_token=AUTH_TOKEN, public_base_url=PUBLIC,
        on_reply=hooks.on_reply, clinic=lambda: ClinicInfo("Oakwood Vets", "+15550100000"),
        clock=lambda: datetime.now(UTC), wake=hooks.wake))
    async with TestClient(TestServer(application)) as client:
        yield client, hooks
    await conn.close()


def signed(path: str, params: dict[str, str], token: str = AUTH_TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(PUBLIC + path, params)}


INBOUND = {"MessageSid": "SM" + "a" * 32, "From": "+15555550123", "To": "+15550009999", "Body": "2",
           "AccountSid": ACCOUNT_SID}


async def test_signed_inbound_text_is_handled_and_answered_through_the_outbox(app) -> None:  # type: ignore[no-untyped-def]
    client, hooks = app
    r = await client.post("/sms/inbound", data=INBOUND, headers=signed("/sms/inbound", INBOUND))
    assert r.status == 200 and "<Response></Response>" in await r.text()
    assert [x.kind for x in hooks.replies] == [ReplyKind.RESCHEDULE] and hooks.woken == 1
    [row] = await outbox.rows(hooks.conn)
    assert row.to_number == "+15555550123" and "https://clinic.example.com/r/T" in row.body
    # Twilio retries the webhook: handled once.
    r = await client.post("/sms/inbound", data=INBOUND, headers=signed("/sms/inbound", INBOUND))
    assert r.status == 200 and len(hooks.replies) == 1 and len(await outbox.rows(hooks.conn)) == 1


@pytest.mark.parametrize("forgery", ["no-header", "wrong-token", "tampered-body", "wrong-url"])
async def test_forged_inbound_text_gets_403_and_does_nothing(app, forgery: str) -> None:  # type: ignore[no-untyped-def]
    client, hooks = app
    data = dict(INBOUND)
    headers = signed("/sms/inbound", INBOUND)
    if forgery == "no-header":
        headers = {}
    elif forgery == "wrong-token":
        headers = signed("/sms/inbound", INBOUND, token="not-the-token")
    elif forgery == "tampered-body":
        data["Body"] = "STOP"
    else:
        headers = signed("/sms/status", INBOUND)
    r = await client.post("/sms/inbound", data=data, headers=headers)
    assert r.status == 403
    assert hooks.replies == [] and await outbox.rows(hooks.conn) == []


async def test_status_callbacks_from_twilio_mark_delivered_and_failed(app) -> None:  # type: ignore[no-untyped-def]
    client, hooks = app
    tx = sqlite_transaction(hooks.conn)
    async with FakeTwilio() as twilio:
        provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number="+15550009999",
                                  status_callback_base=PUBLIC, base_url=twilio.base_url)
        async with tx() as c:
            ids = await outbox.enqueue(c, [NewText("k1", "+15555550123", "one", "delay", "a1"),
                                           NewText("k2", "+15555550124", "two", "delay", "a2")], datetime.now(UTC))
        await Worker(tx, provider, lambda: datetime.now(UTC), WorkerSettings()).run_once()
        await provider.close()
        here = str(client.make_url("/sms/status"))
        sid1, sid2 = (m["sid"] for m in twilio.accepted)
        assert await twilio.send_status(sid1, "delivered", url=f"{here}?row={ids[0]}") == 204
        assert await twilio.send_status(sid2, "undelivered", "30003", url=f"{here}?row={ids[1]}") == 204
        # A late "sent" after "delivered" does not move the row back.
        assert await twilio.send_status(sid1, "sent", url=f"{here}?row={ids[0]}") == 204
        # Forged: signed for another row than the one posted to.
        forged = await twilio.send_status(sid1, "failed", url=f"{here}?row={ids[0]}",
                                          public_url=f"{PUBLIC}/sms/status?row={ids[1]}")
        assert forged == 403
    r1, r2 = await outbox.get(hooks.conn, ids[0]), await outbox.get(hooks.conn, ids[1])
    assert r1 is not None and r1.status == "delivered" and r1.provider_status == "sent"
    assert r2 is not None and r2.status == "failed" and r2.error_code == "30003"


def test_notifier_imports_nothing_from_server_or_kiosk_or_textual() -> None:
    root = Path(__file__).resolve().parent.parent / "notifier"
    for f in root.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for m in mods:
                assert m.split(".")[0] not in ("server", "kiosk", "textual"), f"{f.name} imports {m}"


async def test_the_servers_migration_runner_applies_the_outbox_migration(clinic_db: str) -> None:
    from server.store import open_store

    store = await open_store(clinic_db)
    try:
        assert await store.migrate() == []  # safe to run again
        for table in ("outbox", "inbound_messages", "opt_outs", "link_uses", "recovery_offers"):
            assert await dbq.rows(clinic_db, f"SELECT COUNT(*) FROM {table}") == [(0,)]
        async with store.transaction() as conn:
            assert len(await outbox.enqueue(conn, [NewText("k", "+1555", "b", "delay")], datetime.now(UTC))) == 1
    finally:
        await store.close()
