"""Clients' replies: what they mean, and what we do about each.

`parse_reply` is pure. `handle_inbound` runs in one transaction: records the message
(de-duplicated by the provider's message id: webhooks are retried), acts on it (opt-out,
opt-in, asks the server for a reschedule link, files it for reception) and queues our
answer in the outbox, so a reply is handled exactly once even when Twilio posts it twice.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from notifier import outbox
from notifier.messages import ClinicInfo, ReplyText, reply_message
from notifier.outbox import NewText
from notifier.store import NotifierTx


class ReplyKind(enum.StrEnum):
    KEEP = "keep"
    RESCHEDULE = "reschedule"
    OPT_OUT = "optout"
    OPT_IN = "optin"
    HELP = "help"
    OTHER = "other"


# Carrier / CTIA standard keywords (Twilio's default opt-out handling knows the same).
_OPT_OUT = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout", "stopp",
            "baja", "alto", "parar"}
_OPT_IN = {"start", "unstop", "yes", "si", "sí"}
_HELP = {"help", "info", "ayuda"}
_KEEP = {"1", "keep", "wait", "ok", "okay", "k", "waiting", "keepit", "illwait", "iwillwait", "mantener",
         "espero", "esperar", "esperamos", "vale", "bien"}
_RESCHEDULE = {"2", "reschedule", "change", "cambiar", "reprogramar", "cambio", "otrahora", "otrodia"}
_THUMBS = "\U0001f44d"

# Plain-words opt-outs. Anchored phrases, so "stop by later?" or "please don't cancel" are
# not read as an opt-out: a false opt-out silences a client who wanted texts.
_OPT_OUT_PHRASES = re.compile(
    r"^(please )?(stop|quit|end) (all )?(the )?(texting|texts?|messag(e|es|ing)|sms|sending|contacting)\b"
    r"|^(please )?(do not|dont|don't|no more) (text|message|sms|contact)"
    r"|^(please )?(remove me|take me off|unsubscribe me|opt me out|opt out)"
    r"|^no more (texts|messages)"
    r"|^(no|dejen de|deje de) (me )?(mand|envi)\w* (mas )?mensajes"
    r"|^(dejen|deje) de escribir",
)
# A text that *starts* with a stop word and goes on only with words that press the point
# ("Stop it", "stop now please", "please stop", "unsubscribe me", "opt out of this"): an opt-out.
# Any other word after it ("stop by later?", "stop worrying, we're coming") and it is a
# sentence for reception, as is one that merely contains "stop" ("don't stop me from coming").
_STOP_LEAD = re.compile(r"^(?:(?:please|pls|plz|just|ok|okay|so) )*(?:stop|stopall|unsubscribe|optout|opt out|revoke"
                        r"|baja|parar|alto|para ya)((?: \w+)*)$")
_STOP_TAIL = {"it", "now", "please", "pls", "plz", "all", "this", "that", "these", "them", "immediately", "asap",
              "right", "thanks", "thank", "you", "thx", "me", "us", "my", "number", "already", "for", "good",
              "ever", "forever", "of", "from", "list", "ya", "por", "favor", "ahora", "mi", "numero", "ok", "okay",
              "again", "the", "messages", "texts", "sms"}
# Its first clause alone a stop word: "STOP - wrong number", "Stop! Who is this?", "Baja. Gracias".
_FIRST_CLAUSE = re.compile(r"\s*(.*?)\s*(?:[.!?;:\n(]|\s[-\u2013\u2014]|[\u2013\u2014]|$)")
_STOP_WORDS = {"stop", "stopall", "unsubscribe", "optout", "revoke", "stopp", "baja", "parar", "alto"}
# "wrong number" anywhere: the texts reach someone they are not for, who must not get more.
_WRONG_NUMBER = re.compile(r"\bwrong (number|person|phone|num)\b|\bnumero equivocado\b"
                           r"|\bse equivoc\w* de numero\b")
_CANCEL_VISIT = re.compile(r"^(please )?(cancel|cancelar|anular)\b.*\b(appointment|appt|visit|cita|turno)\b")


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().replace("’", "'")
    text = re.sub(r"[^\w\s']", " ", text)  # punctuation (and emoji, already looked for) out
    return re.sub(r"\s+", " ", text).strip()


def _strip_accents(s: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", s) if unicodedata.category(ch) != "Mn")


def _is_opt_out(raw: str, norm: str) -> bool:
    """A text that clearly asks us to stop (see _STOP_LEAD, _FIRST_CLAUSE, _WRONG_NUMBER)."""
    if _OPT_OUT_PHRASES.search(norm) or _OPT_OUT_PHRASES.search(norm.replace("'", "")):
        return True
    lead = _STOP_LEAD.match(norm)
    if lead and set(lead.group(1).split()) <= _STOP_TAIL:
        return True
    first = _FIRST_CLAUSE.match(raw)
    clause = _strip_accents(_normalise(first.group(1))) if first else ""
    if clause.replace(" ", "") in _STOP_WORDS:
        return True
    return bool(_WRONG_NUMBER.search(norm))


def parse_reply(text: str) -> ReplyKind:
    """What a client's text means. Case, spaces, punctuation and accents don't matter."""
    raw = text.strip()
    if raw and set(raw.replace(" ", "")) <= {_THUMBS, "\U0001f3fb", "\U0001f3fc", "\U0001f3fd",
                                               "\U0001f3fe", "\U0001f3ff", "\ufe0f"}:
        return ReplyKind.KEEP
    norm = _strip_accents(_normalise(text))
    if not norm:
        return ReplyKind.KEEP if _THUMBS in raw else ReplyKind.OTHER
    squashed = norm.replace(" ", "").replace("'", "")
    for words, kind in ((_OPT_OUT, ReplyKind.OPT_OUT), (_OPT_IN, ReplyKind.OPT_IN), (_HELP, ReplyKind.HELP),
                        (_KEEP, ReplyKind.KEEP), (_RESCHEDULE, ReplyKind.RESCHEDULE)):
        if squashed in words or norm in words:
            return kind
    if _is_opt_out(raw, norm):
        return ReplyKind.OPT_OUT
    if _CANCEL_VISIT.search(norm):
        return ReplyKind.RESCHEDULE  # cancelling is done on the reschedule page
    # "1 thanks", "ok 👍", "2 please": a leading choice with a few polite words.
    tokens = norm.split()
    if len(tokens) <= 4:
        if tokens[0] in _KEEP and not set(tokens) & (_RESCHEDULE | _OPT_OUT):
            return ReplyKind.KEEP
        if tokens[0] in _RESCHEDULE and not set(tokens) & (_KEEP | _OPT_OUT):
            return ReplyKind.RESCHEDULE
    return ReplyKind.OTHER


@dataclass(frozen=True, slots=True)
class InboundReply:
    provider_sid: str
    from_number: str
    to_number: str | None
    body: str
    kind: ReplyKind
    received_at: datetime


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """What the server says about a reply: which visit it concerns, in which language to
    answer, and (for RESCHEDULE) the link to send."""

    visit_id: str | None = None
    language: str = "en"
    link: str | None = None
    # A household's text named several pets: each one's (pet name, link), the first being `link`.
    each: tuple[tuple[str, str], ...] = ()


# The server's part: find the client's visit by number; for KEEP record it; for RESCHEDULE
# make a signed link (links.make_token) and return its URL; for OTHER put it in front of
# reception. Called inside the same transaction.
# Given back the caller's own transaction (the server's full one, which can record events too).
OnReply = Callable[[Any, InboundReply], Awaitable[ReplyOutcome]]


@dataclass(frozen=True, slots=True)
class HandledReply:
    duplicate: bool
    kind: ReplyKind
    outbox_ids: list[int]
    capped: bool = False  # no automatic answer: the number had its day's worth (put before reception)


# Automatic answers to one number in 24 hours. Two auto-responders ("Thanks for your message!")
# would otherwise answer each other for ever; a client who needs more talks to a person.
MAX_AUTO_REPLIES_PER_DAY = 5


async def auto_replies_since(tx: NotifierTx, number: str, since: datetime) -> int:
    """How many automatic answers (`reply:` outbox rows) went to `number` since `since`."""
    return await tx.texts_to_number_since(number, since, "reply:")


@dataclass(frozen=True, slots=True)
class Media:
    """A picture (or other file) sent with an MMS reply: Twilio's MediaUrlN and MediaContentTypeN."""

    url: str
    content_type: str = ""


async def handle_inbound(tx: NotifierTx, *, provider_sid: str, from_number: str,
                         to_number: str | None, body: str, now: datetime, clinic: ClinicInfo,
                         on_reply: OnReply, send_optout_confirmation: bool = True,
                         max_auto_replies: int = MAX_AUTO_REPLIES_PER_DAY,
                         media: Sequence[Media] = ()) -> HandledReply:
    """Handle one inbound text inside the caller's transaction (see module docstring).

    At most `max_auto_replies` automatic answers go to one number in 24 hours; past that the
    text is still acted on (an opt-out is recorded, a "keep" kept) but answered by nobody
    but reception, in whose inbox it appears."""
    kind = parse_reply(body)
    # A picture is for a person to see, whatever the words with it ("1" and a photo of the dog).
    if not await tx.record_inbound(provider_sid, from_number, to_number, body, kind.value,
                                   kind is ReplyKind.OTHER or bool(media), now):
        return HandledReply(duplicate=True, kind=kind, outbox_ids=[])
    if media:
        await tx.record_inbound_media(provider_sid, [(m.url, m.content_type) for m in media])
    is_opted_out = bool(await tx.opted_out([from_number]))
    if kind is ReplyKind.OPT_IN and not is_opted_out:
        # "Yes" from someone still subscribed answers our question: they keep their place.
        kind = ReplyKind.KEEP
    reply = InboundReply(provider_sid, from_number, to_number, body, kind, now)
    outcome = await on_reply(tx, reply)
    if outcome.visit_id is not None:
        await tx.set_inbound_visit(provider_sid, outcome.visit_id, kind.value)
    answer: ReplyText | None
    if kind is ReplyKind.OPT_OUT:
        await outbox.record_opt_out(tx, from_number, "reply", now)
        answer = "optout" if send_optout_confirmation and not is_opted_out else None
    elif is_opted_out and kind is not ReplyKind.OPT_IN:
        answer = None  # they opted out: nothing but the START that brings them back
    elif kind is ReplyKind.OPT_IN:
        await outbox.record_opt_in(tx, from_number)
        answer = "optin"
    else:
        answer = kind.value  # type: ignore[assignment]
    if answer is None:
        return HandledReply(duplicate=False, kind=kind, outbox_ids=[])
    if await auto_replies_since(tx, from_number, now - timedelta(hours=24)) >= max_auto_replies:
        await tx.send_inbound_to_reception(provider_sid)
        return HandledReply(duplicate=False, kind=kind, outbox_ids=[], capped=True)
    msg = reply_message(answer, outcome.language, clinic, outcome.link, outcome.each)
    ids = await outbox.enqueue(tx, [NewText(
        dedupe_key=f"reply:{provider_sid}", to_number=from_number, body=msg.body, kind=answer,
        visit_id=outcome.visit_id, segments=msg.segments)], now)
    return HandledReply(duplicate=False, kind=kind, outbox_ids=ids)


async def reception_inbox(tx: NotifierTx, include_handled: bool = False) -> list[dict[str, object]]:
    """Replies a person must answer, oldest first."""
    return await tx.reception_inbox(include_handled)


async def mark_handled(tx: NotifierTx, inbound_id: int, now: datetime) -> bool:
    return await tx.mark_inbound_handled(inbound_id, now)
