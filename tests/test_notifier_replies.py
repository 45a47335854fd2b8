"""Replies: every word, and what handling one does (once, even when Twilio posts it twice)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier import outbox
from notifier import replies as _replies
from notifier.messages import ClinicInfo
from notifier.outbox import NewText
from notifier.replies import (
    InboundReply,
    ReplyKind,
    ReplyOutcome,
    handle_inbound,
    mark_handled,
    parse_reply,
    reception_inbox,
)
from tests.fake_twilio import OutboxDb, open_outbox_db

K = ReplyKind


@pytest.mark.parametrize("text", ["1", "keep", "wait", "ok", "👍", " 1 ", "1.", "KEEP!", "Ok.", "okay", "👍🏽",
                                  "ok 👍", "1 thanks", "Wait", "mantener", "espero"])
def test_keep_words(text: str) -> None:
    assert parse_reply(text) is K.KEEP


@pytest.mark.parametrize("text", ["2", "reschedule", "change", "2!", " Reschedule. ", "CHANGE", "2 please",
                                  "cambiar", "reprogramar", "cancel my appointment", "Cancel the visit please"])
def test_reschedule_words(text: str) -> None:
    assert parse_reply(text) is K.RESCHEDULE


@pytest.mark.parametrize("text", ["STOP", "stop", "Stop.", "STOPALL", "unsubscribe", "CANCEL", "end", "quit",
                                  "revoke", "optout", "opt out", "OPT-OUT", "stop texting me",
                                  "Please stop texting me!", "stop sending me messages", "don't text me",
                                  "do not text me", "no more texts", "remove me", "take me off this list",
                                  "Stop all", " s t o p "])
def test_opt_out_words(text: str) -> None:
    assert parse_reply(text) is K.OPT_OUT


# Issue 11 item 8: each of these left the client subscribed.
@pytest.mark.parametrize("text", ["please stop", "Stop it", "stop now", "STOP - wrong number", "wrong number",
                                  "unsubscribe me", "Stop it now please", "STOP!!! who is this?", "stop\nwrong person",
                                  "Stop. Thanks", "STOP—wrong number", "Pls stop", "stop messaging me thx",
                                  "Sorry, you have the wrong number", "Baja. Gracias", "número equivocado",
                                  "para ya por favor", "Just stop.", "Stop this number"])
def test_a_text_that_starts_with_or_clearly_asks_to_stop_is_an_opt_out(text: str) -> None:
    assert parse_reply(text) is K.OPT_OUT


# A sentence that merely contains a stop word goes to reception, who reads it: a false
# opt-out silences a client who wanted their texts.
@pytest.mark.parametrize("text", ["don't stop me from coming", "Stop by later?", "stop worrying, we're close",
                                  "Stop, I'm parked outside", "we will stop at the pharmacy first",
                                  "nothing wrong, no worries", "Can we end early?", "I'll stop in after work"])
def test_a_sentence_that_only_mentions_stop_is_for_reception(text: str) -> None:
    assert parse_reply(text) is K.OTHER


@pytest.mark.parametrize("text", ["START", "start", "unstop", "YES", "yes!", "Unstop."])
def test_opt_in_words(text: str) -> None:
    assert parse_reply(text) is K.OPT_IN


@pytest.mark.parametrize("text", ["HELP", "help?", "info", "Info.", "ayuda"])
def test_help_words(text: str) -> None:
    assert parse_reply(text) is K.HELP


@pytest.mark.parametrize("text", ["Can I bring her other dog too?", "stop by later?", "running 5 min late",
                                  "", "   ", "what?", "1 or 2?", "please don't cancel", "keep me posted on the "
                                  "other pets too please"])
def test_anything_else_is_for_a_person(text: str) -> None:
    assert parse_reply(text) is K.OTHER


# -- handling -------------------------------------------------------------------------------

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
CLINIC = ClinicInfo("Oakwood Vets", "+15550100000")
NUM = "+15555550123"


@pytest.fixture
async def db(clinic_db: str) -> AsyncIterator[OutboxDb]:
    conn = await open_outbox_db(clinic_db)
    yield conn
    await conn.close()


class Server:
    """What the server does with replies: records them, and makes links."""

    def __init__(self) -> None:
        self.seen: list[InboundReply] = []

    async def __call__(self, conn: OutboxDb, reply: InboundReply) -> ReplyOutcome:
        self.seen.append(reply)
        link = "https://clinic.example/r/TOKEN" if reply.kind is K.RESCHEDULE else None
        return ReplyOutcome(visit_id="a1", language="es" if "cambiar" in reply.body else "en", link=link)


async def reply(db: OutboxDb, server: Server, body: str, sid: str) -> list[int]:
    async with db.transaction() as tx:
        h = await handle_inbound(tx, provider_sid=sid, from_number=NUM, to_number="+15550009999", body=body,
                                 now=NOW, clinic=CLINIC, on_reply=server)
    return h.outbox_ids


async def bodies(db: OutboxDb) -> list[str]:
    return [r.body for r in await outbox.rows(db)]


async def test_keep_is_passed_to_the_server_and_acknowledged(db: OutboxDb) -> None:
    s = Server()
    assert len(await reply(db, s, "1", "SMa")) == 1
    assert [r.kind for r in s.seen] == [K.KEEP]
    assert await bodies(db) == ["Oakwood Vets: thanks, we'll keep your place. We'll text you if anything changes."]


async def test_a_retried_webhook_is_handled_once(db: OutboxDb) -> None:
    s = Server()
    await reply(db, s, "2", "SMdup")
    assert await reply(db, s, "2", "SMdup") == []
    assert len(s.seen) == 1 and len(await bodies(db)) == 1


async def test_reschedule_sends_the_servers_link_in_the_clients_language(db: OutboxDb) -> None:
    s = Server()
    await reply(db, s, "cambiar", "SMb")
    [body] = await bodies(db)
    assert "https://clinic.example/r/TOKEN" in body and body.startswith("Oakwood Vets: elija otra hora")


async def test_opt_out_confirms_once_cancels_queued_texts_and_blocks_new_ones(db: OutboxDb) -> None:
    s = Server()
    async with db.transaction() as tx:
        [queued] = await outbox.enqueue(tx, [NewText("delay:a1:1", NUM, "delay text", "delay", "a1")], NOW)
    await reply(db, s, "stop texting me", "SMc")
    row = await outbox.get(db, queued)
    assert row is not None and row.status == "failed" and row.error_code == "opted_out"
    assert await outbox.opted_out(db, [NUM]) == {NUM}
    confirmations = [r for r in await outbox.rows(db) if r.kind == "optout"]
    assert len(confirmations) == 1 and "START" in confirmations[0].body
    # A second STOP: no second confirmation. Anything else from them: no answer either.
    assert await reply(db, s, "STOP", "SMd") == []
    assert await reply(db, s, "1", "SMe") == []
    async with db.transaction() as tx:
        assert await outbox.enqueue(tx, [NewText("delay:a1:2", NUM, "another", "delay", "a1")], NOW) == []


async def test_start_brings_an_opted_out_client_back(db: OutboxDb) -> None:
    s = Server()
    await reply(db, s, "STOP", "SM1")
    assert len(await reply(db, s, "START", "SM2")) == 1
    assert await outbox.opted_out(db, [NUM]) == set()
    assert (await bodies(db))[-1] == "Oakwood Vets: texts are back on. Reply STOP to stop them."


async def test_yes_from_a_subscribed_client_means_keep(db: OutboxDb) -> None:
    s = Server()
    await reply(db, s, "yes", "SMy")
    assert s.seen[0].kind is K.KEEP


async def test_help_gives_the_clinic_name_and_phone(db: OutboxDb) -> None:
    await reply(db, Server(), "HELP", "SMh")
    [body] = await bodies(db)
    # The clinic's number as the client dials it (one national format everywhere, issue 15 item 8).
    assert "Oakwood Vets" in body and "(555) 010-0000" in body


async def test_other_goes_to_the_reception_inbox_and_the_client_hears_a_person_will_answer(
        db: OutboxDb) -> None:
    await reply(db, Server(), "Can I bring her sister too?", "SMo")
    [body] = await bodies(db)
    assert "a person at reception will answer" in body
    [item] = await reception_inbox(db)
    assert item["body"] == "Can I bring her sister too?" and item["visit_id"] == "a1"
    async with db.transaction() as tx:
        assert await mark_handled(tx, int(item["id"]), NOW)  # type: ignore[call-overload]
    assert await reception_inbox(db) == []


async def test_a_plain_words_opt_out_is_confirmed_like_stop(db: OutboxDb) -> None:
    await reply(db, Server(), "STOP - wrong number", "SMwn")
    assert await outbox.opted_out(db, [NUM]) == {NUM}
    [confirmation] = await outbox.rows(db)
    assert confirmation.kind == "optout" and "START" in confirmation.body


async def test_automatic_answers_to_one_number_stop_at_the_days_cap_and_reception_sees_the_rest(
        db: OutboxDb) -> None:
    # Another auto-responder ("Thanks for your message!") texting back 12 times.
    s = Server()
    answered = [await reply(db, s, "Thanks for your message! We will get back to you.", f"SMbot{i}")
                for i in range(12)]
    assert [len(ids) for ids in answered] == [1] * _replies.MAX_AUTO_REPLIES_PER_DAY + [0] * (
        12 - _replies.MAX_AUTO_REPLIES_PER_DAY)
    assert len(await reception_inbox(db)) == 12  # a person sees every one
    # Past the cap a reply is still acted on: a "keep" reaches the server, unanswered, and is
    # put before reception; an opt-out is recorded.
    assert await reply(db, s, "1", "SMkeep") == [] and s.seen[-1].kind is K.KEEP
    assert (await reception_inbox(db))[-1]["body"] == "1"
    assert await reply(db, s, "STOP", "SMstop") == []
    assert await outbox.opted_out(db, [NUM]) == {NUM}
    # The cap is per number and per 24 hours.
    answers = []
    for i, hours in enumerate([0] * _replies.MAX_AUTO_REPLIES_PER_DAY + [23, 25]):
        async with db.transaction() as tx:
            h = await handle_inbound(tx, provider_sid=f"SMother{i}", from_number="+15555550999", to_number=None,
                                     body="HELP", now=NOW + timedelta(hours=hours), clinic=CLINIC, on_reply=s)
        answers.append(len(h.outbox_ids))
    assert answers == [1] * _replies.MAX_AUTO_REPLIES_PER_DAY + [0, 1]


# -- arbitrary text (hypothesis): whatever the public texts to our number ------------------

_WORDS = sorted(_replies._KEEP | _replies._RESCHEDULE | _replies._OPT_OUT | _replies._OPT_IN | _replies._HELP)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_at_all_gets_an_answer(text: str) -> None:
    assert parse_reply(text) in set(ReplyKind)


@settings(max_examples=300, deadline=None)
@given(word=st.sampled_from(_WORDS), upper=st.lists(st.booleans(), min_size=20, max_size=20),
       before=st.sampled_from(["", " ", "  ", "\n", "¡", "\""]),
       after=st.sampled_from(["", ".", "!", " !!", "?", " \n"]))
def test_a_keyword_means_the_same_in_any_case_and_wrapping(word: str, upper: list[bool], before: str,
                                                          after: str) -> None:
    cased = "".join(ch.upper() if up else ch for ch, up in zip(word, upper + [False] * len(word), strict=False))
    assert parse_reply(before + cased + after) is parse_reply(word)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["see", "you", "soon", "by", "the", "door", "later", "we", "will", "thanks"]),
                min_size=1, max_size=6))
def test_stop_inside_a_sentence_is_not_an_opt_out(words: list[str]) -> None:
    # "We will stop by later": a false opt-out would silence a client who wanted texts.
    assert parse_reply(" ".join(["we", "will", "stop", *words])) is not ReplyKind.OPT_OUT
