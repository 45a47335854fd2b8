"""Client data retention: erase clients' phone numbers and notes N days after their last visit.

The clinic setting `retention_days` (in `clinic.settings`, set with `waitroom retention
--days N --save`) is applied when the server starts; `waitroom retention` applies it (or a
one-off `--days N`) at any time, e.g. from a daily cron job. Visits, pets and the event log
stay (they are what the estimator learns from and hold no contact details); only the way to
reach the client and the free-text notes go. A client with no visit on record is left alone:
there is no "last visit" to count from.
"""

from __future__ import annotations

from datetime import date, timedelta

import aiosqlite

SETTING = "retention_days"


async def erase_stale_clients(conn: aiosqlite.Connection, today: date, days: int) -> int:
    """Blank the mobile number and notes of every client whose last visit is more than `days` days
    before `today` (clinic-local dates). Returns how many clients were erased. Run it inside
    `Store.transaction()`."""
    if days < 1:
        raise ValueError("retention days must be at least 1")
    cutoff = (today - timedelta(days=days)).isoformat()
    cur = await conn.execute(
        "UPDATE clients SET mobile = NULL, notes = '', sms_consent = 0 "
        "WHERE (mobile IS NOT NULL OR notes != '') AND id IN ("
        "  SELECT p.client_id FROM pets p JOIN appointments a ON a.pet_id = p.id"
        "  GROUP BY p.client_id HAVING MAX(a.day) < ?)",
        (cutoff,),
    )
    return cur.rowcount


def retention_days(settings: dict[str, object]) -> int | None:
    """The clinic's retention setting, or None when it keeps contact details indefinitely."""
    v = settings.get(SETTING)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else None
