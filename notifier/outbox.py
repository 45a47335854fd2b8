"""The outbox: every text is a row, written in the transaction of the event that caused it.

Every function takes an aiosqlite connection the caller has already put inside a
transaction (the server's `async with store.transaction() as conn:`); nothing here
begins or commits. Rows move queued -> sending -> sent -> delivered, or to failed (shown
to reception) or held (we could not tell whether it went out: reception decides).
Times are stored as fixed-width UTC text so they compare as strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import aiosqlite

from notifier.messages import ClinicInfo, delay_message
from notifier.policy import PolicySettings, SentText, TextCandidate, TextDecision, decide

DELAY_KINDS = ("delay", "later", "earlier")
STATUSES = ("queued", "sending", "sent", "delivered", "failed", "held")
# Kinds that may go to a number that has opted out: the one confirmation of the opt-out.
_ALLOWED_AFTER_OPTOUT = ("optout",)


def to_db(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("naive datetime: every time in the outbox is aware")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_db(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s)


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


_COLS = ("id, dedupe_key, visit_id, kind, to_number, body, status, attempts, next_attempt_at, expires_at, "
         "uncertain, sending_at, provider_sid, provider_status, error_code, error_message, created_at")


def _row(r: Sequence[object]) -> OutboxRow:
    def t(i: int) -> datetime | None:
        v = r[i]
        return from_db(v) if isinstance(v, str) else None

    nxt, created = t(8), t(16)
    assert nxt is not None and created is not None
    return OutboxRow(
        id=int(r[0]),  # type: ignore[call-overload]
        dedupe_key=str(r[1]), visit_id=None if r[2] is None else str(r[2]), kind=str(r[3]),
        to_number=str(r[4]), body=str(r[5]), status=str(r[6]),
        attempts=int(r[7]),  # type: ignore[call-overload]
        next_attempt_at=nxt, expires_at=t(9), uncertain=bool(r[10]), sending_at=t(11),
        provider_sid=None if r[12] is None else str(r[12]),
        provider_status=None if r[13] is None else str(r[13]),
        error_code=None if r[14] is None else str(r[14]),
        error_message=None if r[15] is None else str(r[15]), created_at=created,
    )


async def get(conn: aiosqlite.Connection, row_id: int) -> OutboxRow | None:
    rows = list(await conn.execute_fetchall(f"SELECT {_COLS} FROM outbox WHERE id = ?", (row_id,)))
    return _row(rows[0]) if rows else None


async def rows(conn: aiosqlite.Connection, *, status: str | None = None, visit_id: str | None = None,
               ) -> list[OutboxRow]:
    where, args = [], []
    if status is not None:
        where.append("status = ?")
        args.append(status)
    if visit_id is not None:
        where.append("visit_id = ?")
        args.append(visit_id)
    sql = f"SELECT {_COLS} FROM outbox" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    return [_row(r) for r in await conn.execute_fetchall(sql, args)]


# -- opt-outs -------------------------------------------------------------------------------

async def opted_out(conn: aiosqlite.Connection, numbers: Iterable[str]) -> set[str]:
    nums = sorted(set(numbers))
    out: set[str] = set()
    for i in range(0, len(nums), 500):  # SQLite's host-parameter limit
        chunk = nums[i:i + 500]
        q = f"SELECT number FROM opt_outs WHERE number IN ({','.join('?' * len(chunk))})"
        out |= {str(r[0]) for r in await conn.execute_fetchall(q, chunk)}
    return out


async def record_opt_out(conn: aiosqlite.Connection, number: str, source: str, now: datetime) -> bool:
    """Never text `number` again; cancels what is still queued for it. True if new."""
    cur = await conn.execute(
        "INSERT INTO opt_outs (number, source, opted_out_at) VALUES (?, ?, ?) ON CONFLICT (number) DO NOTHING",
        (number, source, to_db(now)),
    )
    await conn.execute(
        "UPDATE outbox SET status = 'failed', error_code = 'opted_out', error_message = 'the client opted out', "
        f"updated_at = ? WHERE to_number = ? AND status IN ('queued', 'held') "
        f"AND kind NOT IN ({','.join('?' * len(_ALLOWED_AFTER_OPTOUT))})",
        (to_db(now), number, *_ALLOWED_AFTER_OPTOUT),
    )
    return cur.rowcount > 0


async def record_opt_in(conn: aiosqlite.Connection, number: str) -> bool:
    cur = await conn.execute("DELETE FROM opt_outs WHERE number = ?", (number,))
    return cur.rowcount > 0


# -- queueing -------------------------------------------------------------------------------

async def enqueue(conn: aiosqlite.Connection, texts: Iterable[NewText], now: datetime) -> list[int]:
    """Queue texts; a dedupe key already queued is skipped, as is a number that opted out.

    Returns the ids of the rows inserted (wake the worker when it is not empty).
    """
    texts = list(texts)
    blocked = await opted_out(conn, (t.to_number for t in texts))
    ids: list[int] = []
    for t in texts:
        if t.to_number in blocked and t.kind not in _ALLOWED_AFTER_OPTOUT:
            continue
        told = [to_db(x) for x in t.told] if t.told else [None, None, None]
        cur = await conn.execute(
            "INSERT INTO outbox (dedupe_key, visit_id, kind, to_number, body, segments, status, attempts, "
            "next_attempt_at, expires_at, told_start, told_p10, told_p90, day, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
            (t.dedupe_key, t.visit_id, t.kind, t.to_number, t.body, t.segments, to_db(now),
             to_db(t.expires_at) if t.expires_at else None, *told,
             t.day.isoformat() if t.day else None, to_db(now), to_db(now)),
        )
        if cur.rowcount > 0 and cur.lastrowid is not None:
            ids.append(cur.lastrowid)
    return ids


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


async def sent_texts(conn: aiosqlite.Connection, visit_ids: Iterable[str] | None = None,
                     ) -> dict[str, list[SentText]]:
    """The delay texts queued so far per visit (any status: a queued text is a promise made;
    one that went stale unsent is marked as not having reached the client)."""
    q = (f"SELECT visit_id, created_at, told_start, told_p10, told_p90, kind, "
         f"NOT (status = 'failed' AND COALESCE(error_code, '') = 'expired') FROM outbox "
         f"WHERE kind IN ({','.join('?' * len(DELAY_KINDS))}) AND told_start IS NOT NULL")
    args: list[str] = list(DELAY_KINDS)
    wanted = None if visit_ids is None else set(visit_ids)
    out: dict[str, list[SentText]] = {}
    for r in await conn.execute_fetchall(q + " ORDER BY id", args):
        vid = str(r[0])
        if wanted is not None and vid not in wanted:
            continue
        at, start, p10, p90 = (from_db(r[i]) for i in range(1, 5))
        assert at and start and p10 and p90
        out.setdefault(vid, []).append(SentText(at=at, start=start, p10=p10, p90=p90, kind=r[5],
                                                  reached=bool(r[6])))
    return out


async def queue_texts(
    conn: aiosqlite.Connection,
    candidates: Sequence[TextCandidate],
    now: datetime,
    settings: PolicySettings,
    clinic: ClinicInfo,
    link_for: Callable[[TextCandidate], str | None] | None = None,
) -> list[int]:
    """After an event, in its transaction: decide who to text and queue those texts.

    Reads what was sent and who opted out from the database (so a candidate's own
    `opted_out` only adds to it), runs the policy, renders each text (with the link
    `link_for` gives, e.g. a signed reschedule URL) and queues it. Returns new row ids.
    """
    numbers = [c.to_number for c in candidates if c.to_number]
    blocked = await opted_out(conn, numbers)
    if blocked:
        candidates = [_with_opt_out(c) if c.to_number in blocked else c for c in candidates]
    sent = await sent_texts(conn, [c.visit_id for c in candidates])
    decisions = decide(candidates, now, settings, sent)
    texts = [decision_text(d, clinic, link_for(d.candidate) if link_for else None) for d in decisions]
    return await enqueue(conn, texts, now)


def _with_opt_out(c: TextCandidate) -> TextCandidate:
    from dataclasses import replace

    return replace(c, opted_out=True)


# -- the worker's steps ---------------------------------------------------------------------

async def claim_due(conn: aiosqlite.Connection, now: datetime, limit: int = 20) -> list[OutboxRow]:
    """Queued rows due now, marked `sending` (commit before sending: a crash then leaves
    evidence that a send may have happened). Expired and opted-out rows are failed instead."""
    found = [_row(r) for r in await conn.execute_fetchall(
        f"SELECT {_COLS} FROM outbox WHERE status = 'queued' AND next_attempt_at <= ? "
        "ORDER BY next_attempt_at, id LIMIT ?", (to_db(now), limit))]
    blocked = await opted_out(conn, (r.to_number for r in found))
    claimed = []
    for r in found:
        # An uncertain row is claimed even when stale: the provider may have it, so the worker
        # looks it up once more (found: sent; absent: expired; cannot tell: held) and never
        # sends it late. Calling it "expired" unasked could hide a text the client did get.
        if r.expires_at is not None and r.expires_at <= now and not r.uncertain:
            await mark_failed(conn, r.id, now, "expired", "not sent in time: the news was stale")
        elif r.to_number in blocked and r.kind not in _ALLOWED_AFTER_OPTOUT:
            await mark_failed(conn, r.id, now, "opted_out", "the client opted out")
        else:
            await conn.execute(
                # An uncertain row keeps the time of the attempt that may have gone out: the
                # lookup searches from it, and the grace counts from it.
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1 - uncertain, "
                "sending_at = CASE WHEN uncertain = 1 AND sending_at IS NOT NULL THEN sending_at ELSE ? END, "
                "updated_at = ? WHERE id = ?", (to_db(now), to_db(now), r.id))
            claimed.append(r)
    out = []
    for r in claimed:
        fresh = await get(conn, r.id)
        if fresh is not None:
            out.append(fresh)
    return out


async def next_due(conn: aiosqlite.Connection) -> datetime | None:
    rows = list(await conn.execute_fetchall("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'queued'"))
    return from_db(rows[0][0]) if rows and rows[0][0] else None


async def mark_sent(conn: aiosqlite.Connection, row_id: int, provider_sid: str, provider_status: str | None,
                    now: datetime) -> None:
    # A status callback may have beaten us here (it is a separate request): keep "delivered".
    await conn.execute(
        "UPDATE outbox SET status = CASE WHEN status = 'delivered' THEN status ELSE 'sent' END, "
        "provider_sid = ?, provider_status = COALESCE(provider_status, ?), uncertain = 0, "
        "error_code = NULL, error_message = NULL, updated_at = ? WHERE id = ?",
        (provider_sid, provider_status, to_db(now), row_id))


async def mark_retry(conn: aiosqlite.Connection, row_id: int, now: datetime, at: datetime, code: str | None,
                     message: str, *, uncertain: bool, count_attempt: bool = False) -> None:
    """Back to the queue for `at`. `uncertain`: the provider may have accepted it (a timeout,
    a 5xx), so the worker looks it up before sending again. `count_attempt`: this try
    (a lookup the provider could not answer) counts towards the row's attempts, which set
    its backoff and, for a row without a stale deadline, when the worker gives up."""
    await conn.execute(
        "UPDATE outbox SET status = 'queued', next_attempt_at = ?, uncertain = MAX(uncertain, ?), "
        "attempts = attempts + ?, error_code = ?, error_message = ?, updated_at = ? WHERE id = ?",
        (to_db(at), int(uncertain), int(count_attempt), code, message[:500], to_db(now), row_id))


async def retry_waiting_now(conn: aiosqlite.Connection, now: datetime, *, only_code: str | None = None) -> int:
    """Bring rows waiting out a backoff forward to `now` (the provider answers again): all of
    them, or those whose last error was `only_code`. Rows waiting for the provider's list to
    catch up with a create (`reconcile`) keep their time."""
    cur = await conn.execute(
        "UPDATE outbox SET next_attempt_at = ?, updated_at = ? WHERE status = 'queued' AND next_attempt_at > ? "
        "AND attempts > 0 AND COALESCE(error_code, '') != 'reconcile' AND (? IS NULL OR error_code = ?)",
        (to_db(now), to_db(now), to_db(now), only_code, only_code))
    return cur.rowcount


async def mark_resending(conn: aiosqlite.Connection, row_id: int, now: datetime) -> None:
    """The provider provably does not have the text: this is a fresh attempt from `now`."""
    await conn.execute("UPDATE outbox SET uncertain = 0, attempts = attempts + 1, sending_at = ?, updated_at = ? "
                       "WHERE id = ?",
                       (to_db(now), to_db(now), row_id))


async def mark_failed(conn: aiosqlite.Connection, row_id: int, now: datetime, code: str | None,
                      message: str) -> None:
    await conn.execute(
        "UPDATE outbox SET status = 'failed', error_code = ?, error_message = ?, updated_at = ? WHERE id = ?",
        (code, message[:500], to_db(now), row_id))


async def mark_held(conn: aiosqlite.Connection, row_id: int, now: datetime, message: str) -> None:
    await conn.execute(
        "UPDATE outbox SET status = 'held', error_code = 'unknown_if_sent', error_message = ?, updated_at = ? "
        "WHERE id = ?", (message[:500], to_db(now), row_id))


async def stuck_sending(conn: aiosqlite.Connection) -> list[OutboxRow]:
    """Rows left `sending` by a process that stopped mid-send."""
    return await rows(conn, status="sending")


# Twilio's message statuses, by what they mean for the row.
_DELIVERED = {"delivered", "read"}
_FAILED = {"failed", "undelivered", "canceled"}


async def record_status(conn: aiosqlite.Connection, row_id: int, provider_sid: str | None, status: str,
                        error_code: str | None, now: datetime) -> bool:
    """A delivery status callback for row `row_id`. Returns False for an unknown row.

    Callbacks come out of order and may come before `mark_sent` committed: "delivered"
    and "failed" are final, anything else only fills in the sid.
    """
    row = await get(conn, row_id)
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
    await conn.execute(
        "UPDATE outbox SET status = ?, provider_sid = ?, provider_status = ?, uncertain = 0, "
        "error_code = COALESCE(?, error_code), updated_at = ? WHERE id = ?",
        (new, sid, status, error_code if new == "failed" else None, to_db(now), row_id))
    if error_code == "21610":
        await record_opt_out(conn, row.to_number, "carrier", now)
    return True


# -- reception ------------------------------------------------------------------------------

async def for_reception(conn: aiosqlite.Connection, since: datetime | None = None) -> list[OutboxRow]:
    """Texts that need a person: failed (with the reason) and held (unknown if sent)."""
    out = [r for r in await rows(conn) if r.status in ("failed", "held")]
    return [r for r in out if since is None or r.created_at >= since]


async def resolve_held(conn: aiosqlite.Connection, row_id: int, resend: bool, now: datetime) -> bool:
    """Reception's decision on a held (or failed) row: send it again, or drop it."""
    row = await get(conn, row_id)
    if row is None or row.status not in ("held", "failed"):
        return False
    if resend:
        await conn.execute(
            "UPDATE outbox SET status = 'queued', next_attempt_at = ?, uncertain = 0, expires_at = NULL, "
            "updated_at = ? WHERE id = ?", (to_db(now), to_db(now), row_id))
    else:
        await mark_failed(conn, row_id, now, "dropped", "reception chose not to send")
    return True


# Failed rows reception has settled (`resolve_held`'s drop, `dismiss_failed`): off their list.
SETTLED_CODES = ("dropped", "dismissed")


async def dismiss_failed(conn: aiosqlite.Connection, row_id: int, now: datetime) -> bool:
    """Reception has seen a failed text and will not send it. Only the code changes (the
    reason stays in `error_message`); nothing sends a failed row, so this cannot race the
    worker. False when the row is not failed, or was settled already."""
    cur = await conn.execute(
        f"UPDATE outbox SET error_code = 'dismissed', updated_at = ? WHERE id = ? AND status = 'failed' "
        f"AND COALESCE(error_code, '') NOT IN ({','.join('?' * len(SETTLED_CODES))})",
        (to_db(now), row_id, *SETTLED_CODES))
    return cur.rowcount > 0


def counts(rows_: Iterable[OutboxRow]) -> Mapping[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for r in rows_:
        out[r.status] += 1
    return out
