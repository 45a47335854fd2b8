"""The outbox worker against the fake Twilio on loopback, with a real SQLite file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from notifier import outbox
from notifier.messages import ClinicInfo
from notifier.outbox import NewText
from notifier.policy import PolicySettings, TextCandidate
from notifier.providers import ConsoleProvider, SentMessage, TwilioProvider
from notifier.worker import Worker, WorkerSettings, run_worker
from tests import dbq
from tests.conftest import eventually
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, OutboxDb, open_outbox_db, sqlite_transaction

FAST = WorkerSettings(backoff_base=0.01, backoff_max=0.05, poll_interval=0.05, reconcile_grace=0.2,
                      max_attempts=4)


@dataclass
class Env:
    conn: OutboxDb
    twilio: FakeTwilio
    provider: TwilioProvider
    path: str

    def tx(self):  # type: ignore[no-untyped-def]
        return sqlite_transaction(self.conn)

    def worker(self, settings: WorkerSettings = FAST, provider: object | None = None) -> Worker:
        return Worker(sqlite_transaction(self.conn), provider or self.provider,  # type: ignore[arg-type]
                      lambda: datetime.now(UTC), settings)

    async def queue(self, *texts: NewText) -> list[int]:
        async with sqlite_transaction(self.conn)() as c:
            return await outbox.enqueue(c, texts, datetime.now(UTC))

    async def row(self, row_id: int) -> outbox.OutboxRow:
        r = await outbox.get(self.conn, row_id)
        assert r is not None
        return r


@pytest.fixture
async def env(clinic_db: str) -> AsyncIterator[Env]:
    path = clinic_db
    conn = await open_outbox_db(path)
    async with FakeTwilio(slow_seconds=0.5) as twilio:
        provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, messaging_service_sid="MG" + "1" * 32,
                                  status_callback_base="https://clinic.example", base_url=twilio.base_url,
                                  timeout=0.3)
        yield Env(conn, twilio, provider, path)
        await provider.close()
    await conn.close()


def text(i: int = 1, to: str = "+15555550101") -> NewText:
    return NewText(dedupe_key=f"delay:a{i}:1", to_number=to, body=f"Bella's visit is late ({i})", kind="delay",
                   visit_id=f"a{i}")


async def drain(w: Worker, conn: OutboxDb, until: float = 3.0) -> None:
    """Run the worker until nothing is queued or sending (or time runs out)."""
    deadline = asyncio.get_running_loop().time() + until
    while asyncio.get_running_loop().time() < deadline:
        await w.run_once()
        if not [r for r in await outbox.rows(conn) if r.status in ("queued", "sending")]:
            return
        await asyncio.sleep(0.02)


async def run_until_settled(env: Env, w: Worker) -> None:
    await drain(w, env.conn)


async def test_sends_and_records_the_provider_sid(env: Env) -> None:
    [rid] = await env.queue(text())
    await run_until_settled(env, env.worker())
    row = await env.row(rid)
    assert row.status == "sent" and row.provider_sid == env.twilio.accepted[0]["sid"] and row.attempts == 1
    m = env.twilio.accepted[0]
    assert m["to"] == "+15555550101" and m["body"] == "Bella's visit is late (1)"
    assert m["status_callback"] == f"https://clinic.example/sms/status?row={rid}"
    assert m["messaging_service_sid"] == "MG" + "1" * 32


async def test_the_same_decision_cannot_queue_twice(env: Env) -> None:
    assert len(await env.queue(text(), text())) == 1
    assert await env.queue(text()) == []
    await run_until_settled(env, env.worker())
    assert len(env.twilio.accepted) == 1


@pytest.mark.parametrize("fault", ["429", "500"])
async def test_transient_errors_are_retried_with_backoff(env: Env, fault: str) -> None:
    env.twilio.fail_next(2, fault)
    [rid] = await env.queue(text())
    await run_until_settled(env, env.worker())
    row = await env.row(rid)
    assert row.status == "sent" and row.attempts == 3
    assert len(env.twilio.accepted) == 1 and env.twilio.requests == 3


async def test_a_timeout_is_retried_without_a_double_text(env: Env) -> None:
    # Twilio created the message but answered too slowly: the worker looks it up first.
    env.twilio.fail_next(1, "accept_then_timeout")
    [rid] = await env.queue(text())
    await run_until_settled(env, env.worker())
    assert (await env.row(rid)).status == "sent"
    assert len(env.twilio.accepted) == 1


async def test_a_500_after_twilio_created_the_message_is_not_sent_twice(env: Env) -> None:
    env.twilio.fail_next(1, "accept_then_500")
    [rid] = await env.queue(text())
    await run_until_settled(env, env.worker())
    row = await env.row(rid)
    assert row.status == "sent" and row.provider_sid == env.twilio.accepted[0]["sid"]
    assert len(env.twilio.accepted) == 1


async def test_a_timeout_that_created_nothing_is_sent_after_the_lookup(env: Env) -> None:
    env.twilio.fail_next(1, "timeout")
    [rid] = await env.queue(text())
    await run_until_settled(env, env.worker())
    assert (await env.row(rid)).status == "sent" and len(env.twilio.accepted) == 1


async def test_when_the_provider_answers_again_backed_off_texts_go_out_at_once(env: Env) -> None:
    # After an outage the backoff has grown long; the first text the provider takes again
    # brings the others forward, rather than leaving a client's delay news minutes late.
    slow = WorkerSettings(backoff_base=60.0, backoff_max=300.0, poll_interval=0.05, reconcile_grace=0.2)
    w = env.worker(slow)
    env.twilio.fail_next(1, "429")
    [first] = await env.queue(text(1))
    await w.run_once()
    waiting = await env.row(first)
    assert waiting.status == "queued" and waiting.next_attempt_at > datetime.now(UTC) + timedelta(seconds=30)
    [second] = await env.queue(text(2, to="+15555550102"))
    await drain(w, env.conn, until=3.0)
    assert (await env.row(second)).status == "sent"
    assert (await env.row(first)).status == "sent", "the backed-off text waited out its 60 s backoff"
    assert sorted(m["to"] for m in env.twilio.accepted) == ["+15555550101", "+15555550102"]


async def test_permanent_failure_21610_is_failed_for_reception_and_opts_the_number_out(env: Env) -> None:
    env.twilio.fail_next(1, "21610")
    [rid, other] = await env.queue(text(1), text(2))  # the same number, a second visit
    await run_until_settled(env, env.worker(WorkerSettings(batch=1, backoff_base=0.01, poll_interval=0.05)))
    row = await env.row(rid)
    assert row.status == "failed" and row.error_code == "21610" and "unsubscribed" in (row.error_message or "")
    assert [r.id for r in await outbox.for_reception(env.conn)] == [rid, other]
    assert (await env.row(other)).error_code == "opted_out"
    assert env.twilio.accepted == [] and await outbox.opted_out(env.conn, ["+15555550101"]) == {"+15555550101"}
    # The opt-out is in the clinic's log, by the carrier, once (the number's last four digits only).
    logged = await dbq.rows(env.path, "SELECT type, actor, data FROM events")
    assert [(t, actor, json.loads(d)) for t, actor, d in logged] == [
        ("opt_out", "carrier", {"source": "carrier", "row": rid, "phone_last4": "0101"})]


async def test_gives_up_after_max_attempts(env: Env) -> None:
    env.twilio.fail_next(10, "429")
    [rid] = await env.queue(text())
    await run_until_settled(env, env.worker())
    row = await env.row(rid)
    assert row.status == "failed" and row.attempts == FAST.max_attempts and "gave up" in (row.error_message or "")


async def test_stale_texts_expire_instead_of_going_out_late(env: Env) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    [rid] = await env.queue(NewText("delay:a9:1", "+15555550109", "old news", "delay", "a9", expires_at=past))
    await run_until_settled(env, env.worker())
    assert (await env.row(rid)).error_code == "expired" and env.twilio.accepted == []


class CrashAfterSend:
    """The process dies after Twilio accepted the text, before the commit that records it."""

    def __init__(self, inner: TwilioProvider) -> None:
        self.inner = inner

    async def send(self, to: str, body: str, row_id: int) -> SentMessage:
        await self.inner.send(to, body, row_id)
        raise asyncio.CancelledError  # as a kill would: nothing after this runs

    async def lookup(self, to: str, body: str, since: datetime) -> SentMessage | None:
        return await self.inner.lookup(to, body, since)

    async def close(self) -> None:
        return None


class CrashBeforeSend(CrashAfterSend):
    async def send(self, to: str, body: str, row_id: int) -> SentMessage:
        raise asyncio.CancelledError


async def test_crash_between_send_and_commit_is_reconciled_without_a_second_text(env: Env) -> None:
    [rid] = await env.queue(text())
    with pytest.raises(asyncio.CancelledError):
        await env.worker(provider=CrashAfterSend(env.provider)).run_once()
    assert (await env.row(rid)).status == "sending" and len(env.twilio.accepted) == 1
    # A new process on the same file: start-up reconciliation finds it at Twilio.
    conn2 = await open_outbox_db(env.path)
    try:
        w = Worker(sqlite_transaction(conn2), env.provider, lambda: datetime.now(UTC), FAST)
        assert await w.reconcile() == 1
        await drain(w, conn2)
    finally:
        await conn2.close()
    row = await env.row(rid)
    assert row.status == "sent" and row.provider_sid == env.twilio.accepted[0]["sid"]
    assert len(env.twilio.accepted) == 1


async def test_crash_before_the_text_reached_twilio_is_sent_once_after_the_grace(env: Env) -> None:
    [rid] = await env.queue(text())
    with pytest.raises(asyncio.CancelledError):
        await env.worker(provider=CrashBeforeSend(env.provider)).run_once()
    w = env.worker()
    await w.reconcile()
    assert (await env.row(rid)).status == "queued"  # not resent blindly: looked up again after the grace
    assert env.twilio.accepted == []
    await run_until_settled(env, w)
    assert (await env.row(rid)).status == "sent" and len(env.twilio.accepted) == 1


def fresh_text(i: int = 1, seconds: float = 60.0) -> NewText:
    """A delay text that goes stale `seconds` from now, as every text the policy decides does."""
    return NewText(dedupe_key=f"delay:a{i}:1", to_number=f"+1555555010{i}", body=f"Bella's visit is late ({i})",
                   kind="delay", visit_id=f"a{i}", expires_at=datetime.now(UTC) + timedelta(seconds=seconds))


async def run_for(w: Worker, seconds: float) -> None:
    """Run the worker for a while whatever it has left to do (the provider is down)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        await w.run_once()
        await asyncio.sleep(0.02)


async def test_when_the_lookup_fails_the_text_waits_unsure_and_goes_out_once_the_provider_is_back(
        env: Env) -> None:
    # The create answered 500 (Twilio made nothing), and the list API is down too: the worker
    # cannot tell, so it neither resends nor gives the text to reception; it asks again later.
    env.twilio.fail_next(1, "500")
    env.twilio.fail_lookups = True
    [rid] = await env.queue(fresh_text())
    w = env.worker()
    await run_for(w, 0.8)
    row = await env.row(rid)
    assert row.status == "queued" and row.uncertain and row.error_code == "lookup"
    assert row.attempts > FAST.max_attempts  # fresh: the lookup is retried until the text is stale
    assert env.twilio.requests == 1 and env.twilio.accepted == []  # never resent unasked
    assert await outbox.for_reception(env.conn) == []
    env.twilio.fail_lookups = False  # the provider is back: asked, it has no such text, so send it
    await run_until_settled(env, w)
    row = await env.row(rid)
    assert row.status == "sent" and row.provider_sid == env.twilio.accepted[0]["sid"]
    assert len(env.twilio.accepted) == 1 and env.twilio.requests == 2


async def test_when_the_provider_cannot_be_asked_until_the_text_is_stale_it_is_held_never_resent(
        env: Env) -> None:
    env.twilio.fail_next(1, "timeout")
    env.twilio.fail_lookups = True
    [rid] = await env.queue(fresh_text(seconds=1.0))
    w = env.worker()
    await run_until_settled(env, w)  # runs until the row leaves the queue: held once stale
    row = await env.row(rid)
    assert row.status == "held" and row.error_code == "unknown_if_sent"
    assert row.error_message is not None and row.error_message.startswith(
        "may or may not have been sent; the provider could not be asked until the text went stale at ")
    assert [r.id for r in await outbox.for_reception(env.conn)] == [rid]
    # The provider coming back later changes nothing: reception decides, the worker never resends.
    env.twilio.fail_lookups = False
    await run_for(w, 0.2)
    assert (await env.row(rid)).status == "held" and env.twilio.requests == 1 and env.twilio.accepted == []


async def test_failed_lookups_are_retried_within_a_minute_not_the_send_backoff(env: Env) -> None:
    # Sends back off to 5 minutes; asking the provider is a cheap read that sends nothing, so it
    # is retried at least every lookup_backoff_max: texts go out soon after Twilio is back.
    settings = WorkerSettings(backoff_base=100.0, backoff_max=300.0, lookup_backoff_max=60.0, reconcile_grace=0.0)
    env.twilio.fail_next(1, "500")
    env.twilio.fail_lookups = True
    [rid] = await env.queue(fresh_text(seconds=3600))
    t = [datetime.now(UTC) + timedelta(seconds=1)]  # the worker's clock, moved by hand
    w = Worker(env.tx(), env.provider, lambda: t[0], settings)
    await w.run_once()  # the send meets a 500: the send backoff, 100 s
    assert (await env.row(rid)).next_attempt_at == t[0] + timedelta(seconds=100)
    t[0] += timedelta(seconds=101)
    await w.run_once()  # the lookup fails: asked again within the minute, not after 200 s
    row = await env.row(rid)
    assert row.error_code == "lookup" and row.next_attempt_at == t[0] + timedelta(seconds=60)
    env.twilio.fail_lookups = False
    t[0] += timedelta(seconds=61)
    await w.run_once()
    assert (await env.row(rid)).status == "sent" and len(env.twilio.accepted) == 1


async def test_when_the_lookup_fails_after_twilio_took_the_text_it_is_found_later_and_not_sent_again(
        env: Env) -> None:
    env.twilio.fail_next(1, "accept_then_500")
    env.twilio.fail_lookups = True
    [rid] = await env.queue(fresh_text())
    w = env.worker()
    await run_for(w, 0.3)
    assert (await env.row(rid)).status == "queued" and env.twilio.requests == 1
    env.twilio.fail_lookups = False
    await run_until_settled(env, w)
    row = await env.row(rid)
    assert row.status == "sent" and row.provider_sid == env.twilio.accepted[0]["sid"]
    assert len(env.twilio.accepted) == 1 and env.twilio.requests == 1


async def test_without_a_deadline_failed_lookups_use_up_the_attempts_then_the_text_is_held(env: Env) -> None:
    env.twilio.fail_next(1, "500")
    env.twilio.fail_lookups = True
    [rid] = await env.queue(text())  # no stale deadline: the worker's attempts bound the wait
    await run_until_settled(env, env.worker())
    row = await env.row(rid)
    assert row.status == "held" and row.attempts == FAST.max_attempts
    assert row.error_message is not None and row.error_message.startswith(
        f"may or may not have been sent; the provider could not be asked until the worker gave up after "
        f"{FAST.max_attempts} attempts")
    assert env.twilio.requests == 1


async def test_a_crash_then_a_failed_lookup_at_startup_waits_for_the_provider_rather_than_holding(
        env: Env) -> None:
    [rid] = await env.queue(fresh_text())
    with pytest.raises(asyncio.CancelledError):
        await env.worker(provider=CrashAfterSend(env.provider)).run_once()
    env.twilio.fail_lookups = True
    w = env.worker()
    await w.reconcile()
    row = await env.row(rid)
    assert row.status == "queued" and row.uncertain and row.error_code == "lookup"
    await run_for(w, 0.2)
    env.twilio.fail_lookups = False
    await run_until_settled(env, w)
    row = await env.row(rid)
    assert row.status == "sent" and row.provider_sid == env.twilio.accepted[0]["sid"]
    assert len(env.twilio.accepted) == 1


async def test_an_unsure_text_found_absent_after_it_went_stale_is_expired_not_sent_late(env: Env) -> None:
    env.twilio.fail_next(1, "500")
    [rid] = await env.queue(fresh_text(seconds=0.1))  # stale before the lookup grace (0.2 s) is over
    await run_until_settled(env, env.worker())
    row = await env.row(rid)
    assert row.status == "failed" and row.error_code == "expired"
    assert env.twilio.requests == 1 and env.twilio.accepted == []


async def test_reception_can_resend_a_held_text(env: Env) -> None:
    env.twilio.fail_next(1, "timeout")
    env.twilio.fail_lookups = True
    [rid] = await env.queue(fresh_text(seconds=0.5))
    await run_until_settled(env, env.worker())
    assert (await env.row(rid)).status == "held"
    # Reception looked at the client's phone: it never came. Send it.
    async with env.tx()() as c:
        assert await outbox.resolve_held(c, rid, resend=True, now=datetime.now(UTC))
    env.twilio.fail_lookups = False
    await run_until_settled(env, env.worker())
    assert (await env.row(rid)).status == "sent" and len(env.twilio.accepted) == 1


async def test_background_worker_sends_as_soon_as_woken(env: Env) -> None:
    w = env.worker(WorkerSettings(poll_interval=30))
    task = asyncio.create_task(run_worker(env.tx(), env.provider, lambda: datetime.now(UTC), worker=w))
    try:
        await asyncio.sleep(0.05)
        await env.queue(text())
        w.wake()
        await eventually(lambda: bool(env.twilio.accepted), "the woken worker sent the text")
        assert len(env.twilio.accepted) == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_queue_texts_runs_policy_render_and_enqueue_in_one_call(env: Env) -> None:
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    sched = now + timedelta(minutes=20)
    c = TextCandidate(visit_id="a1", kind="appointment", pet_name="Bella", pet_sex="female", vet_name="Dr. Ruiz",
                      scheduled=sched, arrived=now, start=sched + timedelta(minutes=40),
                      p10=sched + timedelta(minutes=30), p90=sched + timedelta(minutes=55),
                      to_number="+15555550101", consent=True, reason="emergency")
    async with env.tx()() as conn:
        ids = await outbox.queue_texts(conn, [c], now, PolicySettings(), ClinicInfo("Oakwood"),
                                       link_for=lambda cand: f"https://x.example/r/{cand.visit_id}")
        again = await outbox.queue_texts(conn, [c], now, PolicySettings(), ClinicInfo("Oakwood"))
    assert len(ids) == 1 and again == []  # what was told still holds
    [row] = await outbox.rows(env.conn)
    assert row.kind == "delay" and "https://x.example/r/a1" in row.body and row.dedupe_key == "delay:a1:1"
    sent = await outbox.sent_texts(env.conn)
    assert sent["a1"][0].p90 == c.p90


async def test_console_provider_needs_no_account(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    [rid] = await env.queue(text())
    await run_until_settled(env, env.worker(provider=ConsoleProvider()))
    assert (await env.row(rid)).status == "sent"
    assert "Bella's visit is late (1)" in capsys.readouterr().out


def test_make_provider_defaults_to_console_and_checks_twilio_settings() -> None:
    from notifier.providers import make_provider

    assert isinstance(make_provider("console"), ConsoleProvider)
    t = make_provider("twilio", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number="+15550009999",
                      public_url="https://clinic.example/")
    assert isinstance(t, TwilioProvider) and t.status_callback_base == "https://clinic.example"
    with pytest.raises(ValueError):
        make_provider("twilio", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)  # no sender
    with pytest.raises(ValueError):
        make_provider("carrier-pigeon")


async def test_a_delay_text_that_expired_unsent_is_owed_again_when_the_provider_is_back(env: Env) -> None:
    # Through the outbox: the stale text is failed "expired", and the next decision queues a
    # new text with the current news instead of treating the client as told.
    now = datetime.now(UTC)
    start = now + timedelta(minutes=45)
    c = TextCandidate(visit_id="a1", kind="appointment", pet_name="Bella", pet_sex="female", vet_name="Dr. Ruiz",
                      scheduled=now, arrived=now - timedelta(minutes=5), start=start,
                      p10=start - timedelta(minutes=5), p90=start + timedelta(minutes=5),
                      to_number="+15555550101", consent=True, tz=UTC, reason="emergency")
    settings = PolicySettings(enforce_hours=False)
    async with env.tx()() as conn:
        [first] = await outbox.queue_texts(conn, [c], now, settings, ClinicInfo("Clinic", None))
    async with env.tx()() as conn:
        await outbox.mark_failed(conn, first, now, "expired", "not sent in time: the news was stale")
    async with env.tx()() as conn:
        again = await outbox.queue_texts(conn, [c], now + timedelta(minutes=1), settings, ClinicInfo("Clinic", None))
    assert len(again) == 1
    row = await env.row(again[0])
    assert row.dedupe_key == "delay:a1:2" and row.status == "queued"
    # A text that did go out is not repeated.
    async with env.tx()() as conn:
        await outbox.mark_sent(conn, again[0], "SM" + "0" * 32, "queued", now)
    async with env.tx()() as conn:
        assert await outbox.queue_texts(conn, [c], now + timedelta(minutes=2), settings,
                                        ClinicInfo("Clinic", None)) == []
