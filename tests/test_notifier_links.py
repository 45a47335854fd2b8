"""Reschedule links (signed, expiring, single use), service recovery and open slots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from notifier.links import ExpiredLink, ForgedLink, UsedLink, check_link, consume_link, make_token, verify_token
from notifier.recovery import RecoverySettings, offers, record_offer, recovery_offer
from notifier.slots import open_slots
from tests.fake_twilio import OutboxDb, open_outbox_db

SECRET = b"s3cret-for-tests"
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
async def db(clinic_db: str) -> AsyncIterator[OutboxDb]:
    conn = await open_outbox_db(clinic_db)
    yield conn
    await conn.close()


def test_valid_token_names_its_visit() -> None:
    tok = make_token(SECRET, "a17", NOW)
    claim = verify_token(SECRET, tok, NOW + timedelta(hours=23))
    assert claim.visit_id == "a17" and claim.expires_at >= NOW + timedelta(hours=24)
    assert len(tok) < 50  # short enough not to cost a segment on its own


def test_expired_token_is_refused() -> None:
    tok = make_token(SECRET, "a17", NOW, valid_for=timedelta(hours=2))
    with pytest.raises(ExpiredLink):
        verify_token(SECRET, tok, NOW + timedelta(hours=2, minutes=1))


@pytest.mark.parametrize("tamper", ["other-secret", "visit", "truncate", "garbage", "non-ascii", "empty"])
def test_forged_tokens_are_refused(tamper: str) -> None:
    tok = make_token(SECRET, "a17", NOW)
    payload, mac = tok.split(".")
    if tamper == "other-secret":
        bad = make_token(b"not-our-secret", "a17", NOW)
    elif tamper == "visit":
        bad = make_token(SECRET, "a18", NOW).split(".")[0] + "." + mac
    elif tamper == "truncate":
        bad = payload + "." + mac[:-2]
    elif tamper == "garbage":
        bad = "%%%." + mac
    elif tamper == "non-ascii":
        bad = payload + "." + "é" * len(mac)
    else:
        bad = ""
    with pytest.raises(ForgedLink):
        verify_token(SECRET, bad, NOW)


async def test_a_link_works_once(db: OutboxDb) -> None:
    tok = make_token(SECRET, "a17", NOW)
    assert (await check_link(db, SECRET, tok, NOW)).visit_id == "a17"  # showing the page uses nothing
    async with db.transaction() as tx:
        await consume_link(tx, SECRET, tok, NOW)
    with pytest.raises(UsedLink):
        await check_link(db, SECRET, tok, NOW)
    with pytest.raises(UsedLink):
        await consume_link(db, SECRET, tok, NOW)
    # Another link for the same visit is its own link.
    await check_link(db, SECRET, make_token(SECRET, "a17", NOW), NOW)


class BookingFailed(Exception):
    pass


async def test_a_use_rolled_back_with_its_booking_leaves_the_link_usable(db: OutboxDb) -> None:
    tok = make_token(SECRET, "a17", NOW)
    with pytest.raises(BookingFailed):
        async with db.transaction() as tx:
            await consume_link(tx, SECRET, tok, NOW)
            raise BookingFailed  # rolled back with it
    await check_link(db, SECRET, tok, NOW)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        make_token(b"", "a1", NOW)


async def test_service_recovery_for_visits_kept_well_past_their_promise(db: OutboxDb) -> None:
    s = RecoverySettings(enabled=True, gesture="today's exam fee waived", threshold_min=20)
    promised = NOW
    assert recovery_offer("a1", promised, NOW + timedelta(minutes=20), NOW, s) is None
    offer = recovery_offer("a1", promised, None, NOW + timedelta(minutes=35), s)
    assert offer is not None and offer.waited_past_min == 35 and offer.gesture == "today's exam fee waived"
    assert recovery_offer("a1", promised, None, NOW + timedelta(hours=1), RecoverySettings()) is None  # off
    assert recovery_offer("a1", None, None, NOW + timedelta(hours=1), s) is None  # nothing promised
    assert await record_offer(db, offer, NOW)
    assert not await record_offer(db, offer, NOW)  # once per visit
    assert (await offers(db, ["a1", "a2"])) == {"a1": offer}


def test_open_slots_skip_booked_time_and_short_notice() -> None:
    day = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    working = {"v1": [(day, day + timedelta(hours=2))], "v2": [(day, day + timedelta(hours=1))]}
    busy = {"v1": [(day + timedelta(minutes=15), day + timedelta(minutes=45))]}
    slots = open_slots(working, busy, timedelta(minutes=30), NOW, vet="v1")
    starts = [(s.start - day).total_seconds() / 60 for s in slots]
    assert starts == [45, 60, 75, 90]
    every = open_slots(working, busy, timedelta(minutes=30), NOW)
    assert {s.vet for s in every} == {"v1", "v2"} and every == sorted(every, key=lambda s: (s.start, s.vet))
    assert open_slots(working, busy, timedelta(minutes=30), day - timedelta(minutes=30)) [0].start >= day + \
        timedelta(minutes=30)
