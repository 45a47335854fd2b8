"""Delay texts end to end: an event through the API, the policy in its transaction, the
worker sending to a fake Twilio on loopback, and clients' replies through the signed webhook."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from notifier.twilio_signature import compute_signature
from server.app import RUNTIME, create_app
from server.config import Config, ManualClock
from tests import dbq
from tests.conftest import DAY, eventually, seed_clinic
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.test_web_console import add_user, log_in

PUBLIC = "http://clinic.test"
KEEPS = "SELECT appointment_id FROM events WHERE type = 'reply' AND CAST(data AS TEXT) LIKE '%keep%'"
NO_CONSENT = {"+13125550103", "+13125550109"}  # Aiko Tanaka and Noah Williams said no to texts
CLINIC_NUMBER = "+13125550100"


@dataclass
class Clinic:
    client: TestClient[Any, Any]
    twilio: FakeTwilio
    tokens: dict[str, str]
    clock: ManualClock
    db: str  # the clinic's --db spec

    def h(self, role: str = "reception") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def event(self, body: dict[str, Any]) -> None:
        resp = await self.client.post("/api/events", json=body, headers=self.h())
        assert resp.status == 201, await resp.text()

    async def sql(self, query: str, *args: Any) -> list[Any]:
        return await dbq.rows(self.db, query, *args)

    async def settled(self) -> None:
        """Until the worker has sent everything queued (the fake answers at once)."""
        async def drained() -> bool:
            rows = await self.sql("SELECT COUNT(*) FROM outbox WHERE status IN ('queued', 'sending')")
            return bool(rows[0][0] == 0)
        await eventually(drained, "the notifier worker sent its queue")

    async def inbound(self, sender: str, body: str, sid: str, *, sign: bool = True) -> int:
        params = {"MessageSid": sid, "From": sender, "To": CLINIC_NUMBER, "Body": body, "AccountSid": ACCOUNT_SID}
        signature = compute_signature(AUTH_TOKEN if sign else "wrong-token", f"{PUBLIC}/sms/inbound", params)
        resp = await self.client.post("/sms/inbound", data=params, headers={"X-Twilio-Signature": signature})
        return resp.status


@pytest.fixture
async def clinic(clinic_db: str, clock: ManualClock) -> AsyncIterator[Clinic]:
    db = clinic_db
    tokens = await seed_clinic(db)
    clock.advance(minutes=15)  # 08:05: texts are never sent before 08:00 client time
    async with FakeTwilio() as twilio:
        config = Config(db_path=str(db), clock=clock, secret="test-secret", public_url=PUBLIC,
                        sms_provider="twilio", twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                        twilio_from=CLINIC_NUMBER, twilio_base_url=twilio.base_url)
        async with TestClient(TestServer(create_app(config))) as client:
            yield Clinic(client, twilio, tokens, clock, db)


async def _v1_visits(c: Clinic) -> dict[str, str]:
    """Dr. Ruiz's visits today and their clients' numbers."""
    rows = await c.sql("SELECT a.id, cl.mobile FROM appointments a JOIN pets p ON p.id = a.pet_id "
                       "JOIN clients cl ON cl.id = p.client_id WHERE a.vet_id = 'v1' AND a.day = ?", DAY)
    return {r[0]: r[1] for r in rows}


async def test_emergency_texts_the_affected_clients_once_with_reason_range_and_offer(clinic: Clinic) -> None:
    first = f"{DAY.isoformat()}-v1-0800"
    await clinic.event({"type": "checkin", "appointment": first})
    await clinic.settled()
    before = len(clinic.twilio.accepted)
    await clinic.event({"type": "emergency", "id": "e1", "vet": "v1", "expected_min": 90})
    await clinic.settled()
    new = clinic.twilio.accepted[before:]
    assert new, "an emergency pushing Dr. Ruiz 90 min behind texted nobody"
    rows = await clinic.sql("SELECT visit_id, to_number FROM outbox WHERE kind = 'delay' ORDER BY id")
    texted = {vid for vid, _ in rows[-len(new):]}
    assert texted <= set(await _v1_visits(clinic)), "only Dr. Ruiz's clients are behind"
    spanish = {"+13125550101", "+13125550106", "+13125550111"}  # clients whose language is Spanish
    for m in new:
        assert m["to"] not in NO_CONSENT
        body = m["body"]
        assert "Ruiz" in body and f"{PUBLIC}/r/" in body
        if m["to"] in spanish:
            assert "emergencia" in body and "Responda 1" in body
        else:
            assert "emergency" in body and "Reply 1" in body
    pairs = [(m["to"], m["body"]) for m in clinic.twilio.accepted]
    assert len(pairs) == len(set(pairs)), "a text was sent twice"
    # Nothing new happened: a second look decides nothing more.
    assert clinic.client.app is not None
    await clinic.client.app[RUNTIME].tick(clinic.clock.now())
    await clinic.settled()
    assert len(clinic.twilio.accepted) == before + len(new)


async def test_paused_texts_send_nothing(clinic: Clinic) -> None:
    async with dbq.opened(clinic.db) as store, store.transaction() as tx:
        await tx.pause_texts(None, datetime(2026, 3, 2, 13, 0, tzinfo=UTC), "test")
    await clinic.event({"type": "emergency", "id": "e1", "vet": "v1", "expected_min": 120})
    await clinic.settled()
    assert clinic.twilio.accepted == []


async def test_reply_1_keeps_the_place_and_2_sends_the_reschedule_link(clinic: Clinic) -> None:
    await clinic.event({"type": "emergency", "id": "e1", "vet": "v1", "expected_min": 90})
    await clinic.settled()
    number = clinic.twilio.accepted[0]["to"]
    assert await clinic.inbound(number, " ok! ", "SM" + "1" * 32) == 200
    assert await clinic.inbound(number, "1", "SM" + "1" * 32) == 200  # Twilio retried: same message id
    keeps = await clinic.sql(KEEPS)
    assert len(keeps) == 1
    await clinic.settled()  # the answer to "ok" has gone out (else it may count as the answer to "2")
    before = len(clinic.twilio.bodies_to(number))
    assert await clinic.inbound(number, "2", "SM" + "2" * 32) == 200
    await clinic.settled()
    answers = clinic.twilio.bodies_to(number)[before:]
    assert len(answers) == 1 and f"{PUBLIC}/r/" in answers[0]


async def test_forged_webhook_is_refused_and_changes_nothing(clinic: Clinic) -> None:
    assert await clinic.inbound("+13125550102", "STOP", "SM" + "3" * 32, sign=False) == 403
    assert await clinic.sql("SELECT * FROM opt_outs") == []


async def test_stop_means_no_more_delay_texts(clinic: Clinic) -> None:
    visits = await _v1_visits(clinic)
    numbers = {n for n in visits.values() if n not in NO_CONSENT}
    for i, n in enumerate(sorted(numbers)):
        assert await clinic.inbound(n, "STOP", f"SM{i:032d}") == 200
    await clinic.settled()
    # Each decision is in the log (last four digits only), by the client's visit.
    logged = await clinic.sql("SELECT appointment_id, data, actor FROM events WHERE type = 'reply'")
    assert sorted(json.loads(r[1])["phone_last4"] for r in logged) == sorted(n[-4:] for n in numbers)
    assert {json.loads(r[1])["kind"] for r in logged} == {"optout"} and {r[2] for r in logged} == {"sms"}
    assert all(r[0] is not None for r in logged)  # each number has a visit today
    before = len(clinic.twilio.accepted)  # the one confirmation each
    await clinic.event({"type": "emergency", "id": "e1", "vet": "v1", "expected_min": 120})
    await clinic.settled()
    assert not [m for m in clinic.twilio.accepted[before:] if m["to"] in numbers]


async def test_one_text_per_phone_per_decision_names_every_pet_of_the_household(clinic: Clinic) -> None:
    """Max and Bella (James Carter, 312-555-0102) are both behind Dr. Ruiz's emergency: their
    owner gets one text naming both, not two in the same second; each visit counts as told."""
    await clinic.event({"type": "emergency", "id": "e1", "vet": "v1", "expected_min": 120})
    await clinic.settled()
    to_carter = [m for m in clinic.twilio.accepted if m["to"] == "+13125550102"]
    assert len(to_carter) == 1, [m["body"] for m in to_carter]
    numbers = [m["to"] for m in clinic.twilio.accepted]
    assert len(numbers) == len(set(numbers)), "a phone got two texts from one emergency"
    [(row_id, first_visit, body)] = await clinic.sql(
        "SELECT id, visit_id, body FROM outbox WHERE to_number = '+13125550102'")
    covered = [first_visit] + [r[0] for r in await clinic.sql(
        "SELECT visit_id FROM outbox_visits WHERE row_id = ?", row_id)]
    pets = {r[0] for r in await clinic.sql(
        f"SELECT p.name FROM appointments a JOIN pets p ON p.id = a.pet_id "
        f"WHERE a.id IN ({','.join('?' * len(covered))})", *covered)}
    assert pets == {"Max", "Bella"}, covered
    assert "Max" in body and "Bella" in body and body == to_carter[0]["body"]
    assert body.count(f"{PUBLIC}/r/") == len(covered), "each pet's visit gets its own reschedule link"
    # Nothing new happened: every visit the household text named counts as told.
    before = len(clinic.twilio.accepted)
    assert clinic.client.app is not None
    await clinic.client.app[RUNTIME].tick(clinic.clock.now())
    await clinic.settled()
    assert len(clinic.twilio.accepted) == before


async def household_texted(clinic: Clinic) -> set[str]:
    """Dr. Ruiz's emergency texts Max and Bella's owner once: the visits that one text named."""
    await clinic.event({"type": "emergency", "id": "e1", "vet": "v1", "expected_min": 120})
    await clinic.settled()
    [(row_id, first_visit)] = await clinic.sql("SELECT id, visit_id FROM outbox WHERE to_number = '+13125550102'")
    named = {first_visit} | {r[0] for r in await clinic.sql("SELECT visit_id FROM outbox_visits WHERE row_id = ?",
                                                             row_id)}
    assert len(named) >= 2
    return named


async def test_reply_1_to_a_household_text_keeps_every_place_it_named(clinic: Clinic) -> None:
    named = await household_texted(clinic)
    assert await clinic.inbound("+13125550102", "1", "SM" + "4" * 32) == 200
    keeps = await clinic.sql(KEEPS)
    assert {r[0] for r in keeps} == named


async def test_reply_2_to_a_household_text_sends_a_link_for_each_pet_it_named(clinic: Clinic) -> None:
    named = await household_texted(clinic)
    before = len(clinic.twilio.accepted)
    assert await clinic.inbound("+13125550102", "2", "SM" + "5" * 32) == 200
    await clinic.settled()
    [answer] = [m["body"] for m in clinic.twilio.accepted[before:] if m["to"] == "+13125550102"]
    assert "Max: " in answer and "Bella: " in answer, answer
    # Each link opens the reschedule page of its own pet's visit.
    urls = re.findall(rf"{re.escape(PUBLIC)}(/r/\S+)", answer)
    assert len(urls) == len(named)
    pets = set()
    for path in urls:
        page = await clinic.client.get(path)
        html = await page.text()
        assert page.status == 200, html[:300]
        pets |= {p for p in ("Max", "Bella") if f"Change {p}" in html or f"{p}'s visit" in html}
    assert pets == {"Max", "Bella"}
    asked = await clinic.sql("SELECT appointment_id FROM events WHERE type = 'reply' "
                             "AND CAST(data AS TEXT) LIKE '%reschedule%'")
    assert {r[0] for r in asked} == named


# -- issue 11 item 10: Twilio as it really signs and sends ------------------------------------

async def _signed_post(clinic: Clinic, params: dict[str, str], *, configured: str = f"{PUBLIC}/sms/inbound",
                       secret: str = AUTH_TOKEN, algorithm: str | None = None) -> int:
    """A webhook signed by Twilio's own validator code over the URL as configured in Twilio."""
    headers = {"X-Twilio-Signature": RequestValidator(secret).compute_signature(configured, params, algorithm)}
    if algorithm:
        headers["X-Twilio-Webhooks-Signature-Settings"] = f"key=webhooks_sharedkey_1,algorithm={algorithm}"
    return (await clinic.client.post("/sms/inbound", data=params, headers=headers)).status


async def test_webhooks_signed_with_the_default_port_or_hmac_sha256_are_accepted(clinic: Clinic) -> None:
    base = {"From": "+13125550199", "To": CLINIC_NUMBER, "Body": "hello", "AccountSid": ACCOUNT_SID}
    assert await _signed_post(clinic, {**base, "MessageSid": "SM" + "a" * 32},
                              configured="http://clinic.test:80/sms/inbound") == 200
    assert await _signed_post(clinic, {**base, "MessageSid": "SM" + "b" * 32}, algorithm="HMAC_SHA256") == 200
    assert await _signed_post(clinic, {**base, "MessageSid": "SM" + "c" * 32},
                              configured="https://clinic.test/sms/inbound") == 403  # another URL
    assert len(await clinic.sql("SELECT * FROM inbound_messages")) == 2


async def test_a_refused_signature_logs_the_url_it_was_checked_against(
        clinic: Clinic, caplog: pytest.LogCaptureFixture) -> None:
    # Behind a proxy Twilio calls https://vets.example.org/... while WAITROOM_PUBLIC_URL says otherwise.
    params = {"MessageSid": "SM" + "d" * 32, "From": "+13125550199", "Body": "hi", "AccountSid": ACCOUNT_SID}
    with caplog.at_level(logging.WARNING, logger="waitroom.notifier"):
        assert await _signed_post(clinic, params, configured="https://vets.example.org/sms/inbound") == 403
    [line] = [r.getMessage() for r in caplog.records if "X-Twilio-Signature" in r.getMessage()]
    assert f"checked against {PUBLIC}/sms/inbound " in line and "WAITROOM_PUBLIC_URL" in line


async def test_an_mms_reply_keeps_its_pictures_and_reception_sees_them(clinic: Clinic) -> None:
    media = "https://api.twilio.com/2010-04-01/Accounts/" + ACCOUNT_SID + "/Messages/MM{0}/Media/ME{0}"
    params = {"MessageSid": "MM" + "e" * 32, "From": "+13125550101", "To": CLINIC_NUMBER, "Body": "",
              "NumMedia": "2", "AccountSid": ACCOUNT_SID,
              "MediaUrl0": media.format(1), "MediaContentType0": "image/jpeg",
              "MediaUrl1": media.format(2), "MediaContentType1": "image/png"}
    assert await _signed_post(clinic, params) == 200
    await add_user(clinic.db)
    assert (await log_in(clinic.client)).status == 303
    page = await (await clinic.client.get("/console")).text()
    inbox = page[page.index("<h2>Inbox"):]
    assert f'href="{media.format(1)}"' in inbox and "Picture 1 (image/jpeg)" in inbox
    assert f'href="{media.format(2)}"' in inbox and "Picture 2 (image/png)" in inbox
    # "1" with a photo keeps the place, and the photo is still put in front of reception.
    params = {**params, "MessageSid": "MM" + "f" * 32, "Body": "1", "NumMedia": "1"}
    del params["MediaUrl1"], params["MediaContentType1"]
    assert await _signed_post(clinic, params) == 200
    page = await (await clinic.client.get("/console")).text()
    assert page.count(f'href="{media.format(1)}"') == 2
