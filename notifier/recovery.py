"""Service recovery: a gesture (e.g. "today's exam fee waived") for clients we kept waiting
well past what we promised. Pure; the server records the offer on the visit
(`record_offer`) and shows it to reception.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from notifier.store import InboxTx


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


async def record_offer(tx: InboxTx, offer: RecoveryOffer, now: datetime) -> bool:
    """Record an offer once per visit (inside the caller's transaction). True if new."""
    return await tx.record_recovery_offer(offer, now)


async def offers(tx: InboxTx, visit_ids: list[str]) -> dict[str, RecoveryOffer]:
    return await tx.recovery_offers(visit_ids)
