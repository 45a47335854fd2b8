"""Client data retention: erase clients' phone numbers and notes N days after their last visit.

The clinic setting `retention_days` (in `clinic.settings`, set with `waitroom retention
--days N --save`) is applied when the server starts; `waitroom retention` applies it (or a
one-off `--days N`) at any time, e.g. from a daily cron job. Visits, pets and the event log
stay (they are what the estimator learns from and hold no contact details); only the way to
reach the client and the free-text notes go. A client with no visit on record is left alone:
there is no "last visit" to count from.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from server.store import Tx

SETTING = "retention_days"


async def erase_stale_clients(tx: Tx, today: date, days: int, *, actor: str, now: datetime) -> int:
    """Blank the mobile number and notes of every client whose last visit is more than `days` days
    before `today` (clinic-local dates), and log it (a `retention_erase` event naming the clients,
    by id only). Returns how many clients were erased. Run it inside `store.transaction()`."""
    if days < 1:
        raise ValueError("retention days must be at least 1")
    ids = await tx.erase_contacts_last_seen_before(today - timedelta(days=days))
    if ids:
        await tx.record_event("retention_erase", now, None, {"clients": ids, "days": days}, actor, now)
    return len(ids)


def retention_days(settings: dict[str, object]) -> int | None:
    """The clinic's retention setting, or None when it keeps contact details indefinitely."""
    v = settings.get(SETTING)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else None
