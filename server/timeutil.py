"""Reading and writing times: aware datetimes everywhere, one fixed-width UTC form in the database."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.errors import BadRequest

MIN_YEAR, MAX_YEAR = 1971, 2999
_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{2}):?(\d{2})$")


@functools.lru_cache(maxsize=64)  # read on every estimate and text decision; a zone never changes
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
    # Year 1 or 9999 overflows as soon as it is moved to UTC (a 500, once); no clinic's time is
    # before 1971 or after 2999, and a clock that says so is broken, not early or late.
    try:
        year = t.astimezone(UTC).year
    except OverflowError:
        year = t.year
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise BadRequest(f"{field}: {value[:40]!r} is not a plausible time (a clock set wrong?)", field)
    return t


def within(t: datetime, now: datetime, window: timedelta, field: str) -> datetime:
    """`t` if it is within `window` of the server's `now`, else BadRequest naming `field`."""
    if abs(t - now) > window:
        hours = round(window.total_seconds() / 3600)
        raise BadRequest(f"{field}: {t.isoformat()} is more than {hours} hours from the clinic's clock "
                         f"({now.isoformat(timespec='seconds')}); a device's clock may be wrong", field)
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
