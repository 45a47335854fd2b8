"""Reading and writing times: aware datetimes everywhere, one fixed-width UTC form in the database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.errors import BadRequest

_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{2}):?(\d{2})$")


def tz_from(name: str) -> tzinfo:
    """A clinic timezone: an IANA key ("America/Chicago") or a fixed offset ("-05:00")."""
    m = _OFFSET.match(name.strip())
    if m:
        sign = 1 if m.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise BadRequest(f"unknown timezone {name!r}", "timezone") from e


def parse_time(value: object, tz: tzinfo, field: str) -> datetime:
    """An ISO 8601 time from a request; one without an offset is read in the clinic's zone."""
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{field}: expected an ISO 8601 date-time string", field)
    try:
        t = datetime.fromisoformat(value)
    except ValueError as e:
        raise BadRequest(f"{field}: not an ISO 8601 date-time: {value[:40]!r}", field) from e
    if t.tzinfo is None:
        t = t.replace(tzinfo=tz)
    return t


def to_db(t: datetime | None) -> str | None:
    """The one stored form of a time: fixed-width UTC text (`2026-03-02T13:50:00.000000Z`), so two
    stored times compare as strings. Used by the store's SQLite backend only."""
    if t is None:
        return None
    if t.tzinfo is None:
        raise ValueError("naive datetime: every stored time is aware")
    # isoformat pads the year to 4 digits (strftime's %Y does not, for a year before 1000).
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_db(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s)


def iso(t: datetime, tz: tzinfo) -> str:
    """A time for an answer: in the clinic's zone, with its offset, to the second."""
    return t.astimezone(tz).replace(microsecond=0).isoformat()
