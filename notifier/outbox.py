"""The outbox: every text is a row, written in the transaction of the event that caused it.

Every function takes a transaction the caller has opened (the server's
`async with store.transaction() as tx:`; see notifier/store.py for what it must offer);
nothing here begins or commits, and no SQL lives here. Rows move queued -> sending -> sent ->
delivered, or to failed (shown to reception) or held (we could not tell whether it went out: reception decides).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from notifier.messages import ClinicInfo, delay_message, household_message
from notifier.policy import PolicySettings, SentText, TextCandidate, TextDecision, by_number, decide
from notifier.store import NotifierTx, OutboxTx

DELAY_KINDS = ("delay", "later", "earlier")
STATUSES = ("queued", "sending", "sent", "delivered", "failed", "held")
# Kinds that may go to a number that has opted out: the one confirmation of the opt-out.
_ALLOWED_AFTER_OPTOUT = ("optout",)


@dataclass(frozen=True, slots=True)
class AlsoAbout:
    """Another visit one text is about (a household's second pet), with what it told of it."""

    visit_id: str
    kind: str
    start: datetime
    p10: datetime
    p90: datetime


# A text held before any send because what it says cannot be right (a delay of days).
HELD_IMPLAUSIBLE = "implausible"


@dataclass(frozen=True, slots=True)
class NewText:
    dedupe_key: str
    to_number: str
    body: str
    kind: str
    visit_id: str | None = None
    segments: int = 1
    told: tuple[datetime, datetime, datetime] | None = None  # start, p10, p90
    day: date | None = None
    expires_at: datetime | None = None
    # The other visits this text names (one text per phone per decision): each counts as told.
    also: tuple[AlsoAbout, ...] = ()
    # Queued `held` (error code HELD_IMPLAUSIBLE) for reception to send or drop, not sent.
    hold_reason: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    dedupe_key: str
    visit_id: str | None
    kind: str
    to_number: str
    body: str
    status: str
    attempts: int  # tries at the provider: sends, and lookups it could not answer
    next_attempt_at: datetime
    expires_at: datetime | None
    uncertain: bool
    sending_at: datetime | None
    provider_sid: str | None
    provider_status: str | None
    error_code: str | None
    error_message: str | None
    created_at: datetime


async def get(tx: OutboxTx, row_id: int) -> OutboxRow | None:
    return await tx.outbox_row(row_id)


async def rows(tx: OutboxTx, *, status: str | None = None, visit_id: str | None = None) -> list[OutboxRow]:
    return await tx.outbox_rows(status=status, visit_id=visit_id)


# -- opt-outs -------------------------------------------------------------------------------

async def opted_out(tx: OutboxTx, numbers: Iterable[str]) -> set[str]:
    return await tx.opted_out(numbers)


async def record_opt_out(tx: OutboxTx, number: str, source: str, now: datetime) -> bool:
    """Never text `number` again; cancels what is still queued for it. True if new."""
    return await tx.record_opt_out(number, source, now, _ALLOWED_AFTER_OPTOUT)


async def record_carrier_opt_out(tx: NotifierTx, row: OutboxRow, now: datetime) -> None:
    """The carrier says the number blocked our texts (Twilio 21610): opt it out, and log the
    change (the number's last four digits only) with the text that found it."""
    if await record_opt_out(tx, row.to_number, "carrier", now):
        await tx.record_event("opt_out", now, row.visit_id, {"source": "carrier", "row": row.id,
                                                             "phone_last4": row.to_number[-4:]}, "carrier", now)


async def record_opt_in(tx: OutboxTx, number: str) -> bool:
    return await tx.record_opt_in(number)


# -- queueing -------------------------------------------------------------------------------

async def enqueue(tx: OutboxTx, texts: Iterable[NewText], now: datetime) -> list[int]:
    """Queue texts; a dedupe key already queued is skipped, as is a number that opted out.

    Returns the ids of the rows inserted (wake the worker when it is not empty).
    """
    texts = list(texts)
    blocked = await tx.opted_out(t.to_number for t in texts)
    return await tx.insert_texts([t for t in texts if t.to_number not in blocked or t.kind in _ALLOWED_AFTER_OPTOUT],
                                 now)


def decision_text(d: TextDecision, clinic: ClinicInfo, link: str | None,
                  expires_after: timedelta | None = timedelta(minutes=30)) -> NewText:
    """The outbox row for a policy decision."""
    c = d.candidate
    assert c.to_number is not None  # the policy never decides a text without a number
    msg = delay_message(d, clinic, link)
    return NewText(
        dedupe_key=d.dedupe_key, to_number=c.to_number, body=msg.body, kind=d.kind, visit_id=c.visit_id,
        segments=msg.segments, told=(c.start, c.p10, c.p90), day=d.day,
        # A delay text that could not go out for half an hour tells a stale story: drop it,
        # the next event decides afresh.
        expires_at=d.at + expires_after if expires_after is not None else None,
    )


def group_text(ds: Sequence[TextDecision], clinic: ClinicInfo, links: Sequence[str | None],
               expires_after: timedelta | None = timedelta(minutes=30)) -> NewText:
    """One outbox row for one phone's decisions of a round (see `policy.by_number`): the first
    visit is the row's own, the others ride along in `also`, each with the range told."""
    first = decision_text(ds[0], clinic, links[0], expires_after)
    if len(ds) == 1:
        return first
    msg = household_message(list(ds), clinic, list(links))
    also = tuple(AlsoAbout(d.visit_id, d.kind, d.candidate.start, d.candidate.p10, d.candidate.p90) for d in ds[1:])
    return replace(first, dedupe_key="+".join(d.dedupe_key for d in ds), body=msg.body, segments=msg.segments,
                   also=also)


async def sent_texts(tx: OutboxTx, visit_ids: Iterable[str] | None = None) -> dict[str, list[SentText]]:
    """The delay texts queued so far per visit (any status: a queued text is a promise made;
    one that went stale unsent is marked as not having reached the client)."""
    return await tx.sent_texts(visit_ids, DELAY_KINDS)


async def queue_texts(
    tx: OutboxTx,
    candidates: Sequence[TextCandidate],
    now: datetime,
    settings: PolicySettings,
    clinic: ClinicInfo,
    link_for: Callable[[TextCandidate], str | None] | None = None,
    *,
    one_per_number: bool = True,
    hold_if: Callable[[TextDecision], str | None] | None = None,
) -> list[int]:
    """After an event, in its transaction: decide who to text and queue those texts.

    Reads what was sent and who opted out from the database (so a candidate's own
    `opted_out` only adds to it), runs the policy, renders each text (with the link
    `link_for` gives, e.g. a signed reschedule URL) and queues it. Returns new row ids.
    `one_per_number`: one text per phone per round, naming every pet it is about (a household
    sharing a phone); off for the replay, whose clients all share one made-up number.
    A decision `hold_if` gives a reason for is queued `held` with that reason, for reception,
    instead (a text about several pets: held if any of them is).
    """
    numbers = [c.to_number for c in candidates if c.to_number]
    blocked = await tx.opted_out(numbers)
    if blocked:
        candidates = [_with_opt_out(c) if c.to_number in blocked else c for c in candidates]
    sent = await sent_texts(tx, [c.visit_id for c in candidates])
    decisions = decide(candidates, now, settings, sent)
    groups = by_number(decisions) if one_per_number else [[d] for d in decisions]
    texts = [group_text(g, clinic, [link_for(d.candidate) if link_for else None for d in g]) for g in groups]
    if hold_if is not None:
        for n, g in enumerate(groups):
            why = next((r for d in g if (r := hold_if(d))), None)
            if why:
                texts[n] = replace(texts[n], hold_reason=why)
    return await enqueue(tx, texts, now)


def _with_opt_out(c: TextCandidate) -> TextCandidate:
    return replace(c, opted_out=True)


# -- the worker's steps ---------------------------------------------------------------------

async def claim_due(tx: OutboxTx, now: datetime, limit: int = 20) -> list[OutboxRow]:
    """Queued rows due now, marked `sending` (commit before sending: a crash then leaves
    evidence that a send may have happened). Expired and opted-out rows are failed instead."""
    found = await tx.due_texts(now, limit)
    blocked = await tx.opted_out(r.to_number for r in found)
    claimed = []
    for r in found:
        # An uncertain row is claimed even when stale: the provider may have it, so the worker
        # looks it up once more (found: sent; absent: expired; cannot tell: held) and never
        # sends it late. Calling it "expired" unasked could hide a text the client did get.
        if r.expires_at is not None and r.expires_at <= now and not r.uncertain:
            await tx.mark_text_failed(r.id, now, "expired", "not sent in time: the news was stale")
        elif r.to_number in blocked and r.kind not in _ALLOWED_AFTER_OPTOUT:
            await tx.mark_text_failed(r.id, now, "opted_out", "the client opted out")
        else:
            await tx.mark_text_sending(r.id, now)
            claimed.append(r)
    out = []
    for r in claimed:
        fresh = await tx.outbox_row(r.id)
        if fresh is not None:
            out.append(fresh)
    return out


async def next_due(tx: OutboxTx) -> datetime | None:
    return await tx.next_text_due_at()


async def mark_sent(tx: OutboxTx, row_id: int, provider_sid: str, provider_status: str | None,
                    now: datetime) -> None:
    await tx.mark_text_sent(row_id, provider_sid, provider_status, now)


async def mark_retry(tx: OutboxTx, row_id: int, now: datetime, at: datetime, code: str | None,
                     message: str, *, uncertain: bool, count_attempt: bool = False) -> None:
    """Back to the queue for `at`. `uncertain`: the provider may have accepted it (a timeout,
    a 5xx), so the worker looks it up before sending again. `count_attempt`: this try
    (a lookup the provider could not answer) counts towards the row's attempts, which set
    its backoff and, for a row without a stale deadline, when the worker gives up."""
    await tx.mark_text_retry(row_id, now, at, code, message, uncertain=uncertain, count_attempt=count_attempt)


async def retry_waiting_now(tx: OutboxTx, now: datetime, *, only_code: str | None = None) -> int:
    """Bring rows waiting out a backoff forward to `now` (the provider answers again): all of
    them, or those whose last error was `only_code`. Rows waiting for the provider's list to
    catch up with a create (`reconcile`) keep their time."""
    return await tx.retry_waiting_texts_now(now, only_code)


async def mark_resending(tx: OutboxTx, row_id: int, now: datetime) -> None:
    """The provider provably does not have the text: this is a fresh attempt from `now`."""
    await tx.mark_text_resending(row_id, now)


async def mark_failed(tx: OutboxTx, row_id: int, now: datetime, code: str | None, message: str) -> None:
    await tx.mark_text_failed(row_id, now, code, message)


async def mark_held(tx: OutboxTx, row_id: int, now: datetime, message: str) -> None:
    await tx.mark_text_held(row_id, now, message)


async def stuck_sending(tx: OutboxTx) -> list[OutboxRow]:
    """Rows left `sending` by a process that stopped mid-send."""
    return await tx.outbox_rows(status="sending")


# Twilio's message statuses, by what they mean for the row.
_DELIVERED = {"delivered", "read"}
_FAILED = {"failed", "undelivered", "canceled"}


async def record_status(tx: NotifierTx, row_id: int, provider_sid: str | None, status: str,
                        error_code: str | None, now: datetime) -> bool:
    """A delivery status callback for row `row_id`. Returns False for an unknown row.

    Callbacks come out of order and may come before `mark_sent` committed: "delivered"
    and "failed" are final, anything else only fills in the sid.
    """
    row = await tx.outbox_row(row_id)
    if row is None:
        return False
    if row.provider_sid and provider_sid and row.provider_sid != provider_sid:
        return False  # not the message this row sent: a forged or misrouted callback
    sid = provider_sid or row.provider_sid
    status = status.lower()
    if row.status in ("delivered", "failed") and status not in _DELIVERED | _FAILED:
        new = row.status
    elif status in _DELIVERED:
        new = "delivered"
    elif status in _FAILED:
        new = "failed"
    elif row.status in ("sending", "queued", "held"):
        new = "sent"  # the provider has it: whatever we were unsure of, it went out
    else:
        new = row.status
    await tx.set_text_status(row_id, new, sid, status, error_code if new == "failed" else None, now)
    if error_code == "21610":
        await record_carrier_opt_out(tx, row, now)
    return True


# -- reception ------------------------------------------------------------------------------

async def for_reception(tx: OutboxTx, since: datetime | None = None) -> list[OutboxRow]:
    """Texts that need a person: failed (with the reason) and held (unknown if sent)."""
    out = [r for r in await tx.outbox_rows() if r.status in ("failed", "held")]
    return [r for r in out if since is None or r.created_at >= since]


async def resolve_held(tx: OutboxTx, row_id: int, resend: bool, now: datetime) -> bool:
    """Reception's decision on a held (or failed) row: send it again, or drop it."""
    row = await tx.outbox_row(row_id)
    if row is None or row.status not in ("held", "failed"):
        return False
    if resend:
        await tx.requeue_text(row_id, now)
    else:
        await tx.mark_text_failed(row_id, now, "dropped", "reception chose not to send")
    return True


# Failed rows reception has settled (`resolve_held`'s drop, `dismiss_failed`): off their list.
SETTLED_CODES = ("dropped", "dismissed")


async def dismiss_failed(tx: OutboxTx, row_id: int, now: datetime) -> bool:
    """Reception has seen a failed text and will not send it. Only the code changes (the
    reason stays in `error_message`); nothing sends a failed row, so this cannot race the
    worker. False when the row is not failed, or was settled already."""
    return await tx.dismiss_failed_text(row_id, now, SETTLED_CODES)


def counts(rows_: Iterable[OutboxRow]) -> Mapping[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for r in rows_:
        out[r.status] += 1
    return out
