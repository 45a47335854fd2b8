"""The clinic's opening hours and the window of times the server will believe.

Pure: settings and times in, times out. The pages, the kiosk routes and the event API all
bound what they accept or draw by these, so one absurd time (a kiosk whose clock booted at
year 1, an event "at 2100") can neither stall the server nor grow a page.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_OPEN = (time(8, 0), time(17, 0))
DEFAULT_HOURS = {d: DEFAULT_OPEN for d in range(5)}
# How far from the server's clock an event's time may be: a desk or a practice-management
# system a little out of step is normal, a day is not (docs/ARCHITECTURE.md, "Times").
EVENT_WINDOW = timedelta(hours=24)
# The pages' timeline shows the opening hours, stretched for what really happened before or
# after them, but never by more than this either side: a page is at most ~a day wide.
EARLY_PAD = timedelta(hours=3)
LATE_PAD = timedelta(hours=6)


# What one day can hold, unless the clinic's settings say otherwise (`max_visits_per_day`): far
# above any real clinic (a busy one sees ~150), far below what stalls the estimator.
DEFAULT_MAX_VISITS = 2000
# No delay text says more than this many minutes late unless reception sends it
# (`texts.max_delay_min`): past it, the data is wrong, not the day.
DEFAULT_MAX_DELAY_MIN = 6 * 60


def max_visits_per_day(settings: Mapping[str, Any]) -> int:
    v = settings.get("max_visits_per_day")
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else DEFAULT_MAX_VISITS


def max_delay_min(settings: Mapping[str, Any]) -> float:
    texts = settings.get("texts")
    v = texts.get("max_delay_min") if isinstance(texts, dict) else None
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and v > 0 else DEFAULT_MAX_DELAY_MIN


def parse_hours(value: object) -> dict[int, tuple[time, time]] | None:
    """`opening_hours` ({"mon": ["08:00", "17:00"], ...; a day missing or null is closed}),
    or None when the setting is malformed."""
    if not isinstance(value, dict):
        return None
    out: dict[int, tuple[time, time]] = {}
    for key, span in value.items():
        day = str(key).strip().lower()[:3]
        if day not in WEEKDAYS:
            return None
        if span is None or span == []:
            continue  # closed that day
        if not isinstance(span, list | tuple) or len(span) != 2 or not all(isinstance(x, str) for x in span):
            return None
        try:
            start, end = time.fromisoformat(span[0]), time.fromisoformat(span[1])
        except ValueError:
            return None
        if start >= end:
            return None
        out[WEEKDAYS.index(day)] = (start, end)
    return out


def opening(settings: Mapping[str, Any], day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """Today's (open, close), clinic-local. A day the settings call closed (the clinic is open
    anyway if it has visits: the demo, a Saturday clinic) counts as 08:00-17:00."""
    hours = parse_hours(settings.get("opening_hours"))
    span = (hours if hours is not None else DEFAULT_HOURS).get(day.weekday(), DEFAULT_OPEN)
    return datetime.combine(day, span[0], tz), datetime.combine(day, span[1], tz)


def page_span(settings: Mapping[str, Any], day: date, tz: tzinfo, seen: list[datetime]) -> tuple[datetime, datetime]:
    """The stretch of the day a timeline draws: opening hours, widened to cover the `seen`
    times, but never more than EARLY_PAD before opening or LATE_PAD after closing, whatever
    the data says."""
    open_t, close_t = opening(settings, day, tz)
    start, end = open_t, close_t
    for t in seen:
        start, end = min(start, t), max(end, t)
    return max(start, open_t - EARLY_PAD), min(end, close_t + LATE_PAD)


def check_in_time(settings: Mapping[str, Any], now: datetime, tz: tzinfo, taken: datetime) -> datetime:
    """When an offline check-in happened, as far as the server will believe it: not in the
    future, and not before today's opening (a check-in queued overnight, or by a kiosk with
    a wrong clock, counts from opening, or from now when it arrives before opening)."""
    open_t, _ = opening(settings, now.astimezone(tz).date(), tz)
    return max(min(taken, now), min(open_t, now))
