"""Service recovery: a gesture (e.g. "today's exam fee waived") for clients we kept waiting
well past what we promised. Pure; the server records the offer on the visit
(`record_offer`) and shows it to reception.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from notifier.outbox import to_db


@dataclass(frozen=True, slots=True)
class RecoverySettings:
    enabled: bool = False
    gesture: str = "today's exam fee waived"
    # Minutes past the latest range we told (kiosk or text) before a gesture is owed.
    threshold_min: float = 20.0


@dataclass(frozen=True, slots=True)
class RecoveryOffer:
    visit_id: str
    gesture: str
    waited_past_min: float


def recovery_offer(visit_id: str, promised_p90: datetime | None, started: datetime | None, now: datetime,
                   settings: RecoverySettings) -> RecoveryOffer | None:
    """The gesture owed to a visit, if any: it waited past its promised P90 by more than the
    threshold (until it started, or until now if it has not)."""
    if not settings.enabled or promised_p90 is None:
        return None
    until = started or now
    past = (until - promised_p90).total_seconds() / 60.0
    if past <= settings.threshold_min:
        return None
    return RecoveryOffer(visit_id=visit_id, gesture=settings.gesture, waited_past_min=round(past, 1))


async def record_offer(conn: aiosqlite.Connection, offer: RecoveryOffer, now: datetime) -> bool:
    """Record an offer once per visit (inside the caller's transaction). True if new."""
    cur = await conn.execute(
        "INSERT INTO recovery_offers (visit_id, gesture, waited_past_min, offered_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (visit_id) DO NOTHING", (offer.visit_id, offer.gesture, offer.waited_past_min, to_db(now)))
    return cur.rowcount > 0


async def offers(conn: aiosqlite.Connection, visit_ids: list[str]) -> dict[str, RecoveryOffer]:
    if not visit_ids:
        return {}
    q = (f"SELECT visit_id, gesture, waited_past_min FROM recovery_offers "
         f"WHERE visit_id IN ({','.join('?' * len(visit_ids))})")
    return {str(r[0]): RecoveryOffer(str(r[0]), str(r[1]), float(r[2]))
            for r in await conn.execute_fetchall(q, visit_ids)}
