"""Jinja2 rendering and the small formatting helpers the templates share."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, tzinfo
from typing import Any

import jinja2
from aiohttp import web

from notifier import formats
from server.web.board import MAX_BEHIND_MIN, Board, Lane, LogEntry, VisitView

TEMPLATES = web.AppKey("web_templates", jinja2.Environment)


def make_env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("server.web", "templates"),
                              autoescape=jinja2.select_autoescape(default=True), trim_blocks=True,
                              lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def hm(t: datetime | None, tz: tzinfo) -> str:
    """ "10:05 AM": the one English time format (notifier.formats.clock), as texts say it."""
    if t is None:
        return ""
    return formats.clock(t, tz, "en")


def dur(minutes: float) -> str:
    """ "45 min", "1 h 40 min": the one duration format (notifier.formats.duration)."""
    return formats.duration(minutes)


def round5(t: datetime, tz: tzinfo, up: bool = False) -> datetime:
    """A range end rounded outward to 5 minutes, as the texts say it (never a false precision)."""
    t = t.astimezone(tz).replace(second=0, microsecond=0)
    extra = t.minute % 5
    if up and extra:
        t += timedelta(minutes=5 - extra)
    elif not up:
        t -= timedelta(minutes=extra)
    return t


def hm5(t: datetime, tz: tzinfo, up: bool = False) -> str:
    """`hm` of a range end rounded outward to 5 minutes (`round5`)."""
    return hm(round5(t, tz, up), tz)


def mins(a: datetime | None, b: datetime | None) -> int:
    if a is None or b is None:
        return 0
    return max(0, int((b - a).total_seconds() // 60))


def behind_text(lane: Lane) -> str:
    """ "about 25 min behind (emergency)", as the lobby and the console say it."""
    if lane.behind_min < 5:
        text = "on time"
        if lane.behind_reason == "emergency":
            text += " (emergency in progress)"
        return text
    if lane.behind_min >= MAX_BEHIND_MIN:
        text = f"more than {dur(MAX_BEHIND_MIN)} behind"
    else:
        text = f"about {dur(5 * round(lane.behind_min / 5))} behind"
    return f"{text} ({lane.behind_reason})" if lane.behind_reason else text


def eta_text(v: VisitView, now: datetime) -> str:
    """A lobby line's wait: "next", or "about 10–20 min" in 5-minute steps."""
    if v.estimate is None:
        return ""
    low = max(0, (v.estimate.p10 - now).total_seconds() / 60)
    high = max(0, (v.estimate.p90 - now).total_seconds() / 60)
    if low >= MAX_BEHIND_MIN:
        return "later today"  # never a wait no clinic could have (see board.MAX_BEHIND_MIN)
    high = min(high, MAX_BEHIND_MIN)
    lo5, hi5 = 5 * math.floor(low / 5), 5 * math.ceil(high / 5)
    if hi5 <= 5:
        return "next"
    if hi5 >= 60:  # "about 1 h 40 min–3 h", not "about 100–180 min"
        return f"about {dur(lo5)}–{dur(hi5)}" if lo5 != hi5 else f"about {dur(hi5)}"
    return f"about {lo5}–{hi5} min" if lo5 != hi5 else f"about {hi5} min"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe(e: LogEntry, board: Board) -> str:
    """One line of the recent-actions list."""
    v = board.visits.get(e.appointment or "")
    who = v.pet if v else (e.data.get("pet") or e.appointment or "")
    vet = board.lane(str(e.data.get("vet", "")))
    vet_name = vet.name if vet else str(e.data.get("vet", ""))
    t = e.type
    if t == "emergency":
        return f"Emergency for {vet_name} ({int(e.data.get('expected_min') or 45)} min)"
    if t == "vet_late":
        return f"{vet_name} away until {hm(datetime.fromisoformat(e.data['until']), board.tz)}"
    if t == "vet_available":
        return f"{vet_name} available"
    if t == "move":
        return f"{who} moved to {vet_name}"
    if t == "reorder":
        return f"{who} moved {e.data.get('direction', '')}"
    if t in ("pause_texts", "resume_texts"):
        what = "Paused" if t == "pause_texts" else "Resumed"
        return f"{what} texts for {who or 'the clinic'}" if e.data.get("client") else f"{what} texts for the clinic"
    if t == "send_text":
        return f"Text to {who or 'a client'}"
    if t == "text_decision":
        visit = board.visits.get(str(e.data.get("visit") or ""))
        what = f"{'Held' if e.data.get('status') == 'held' else 'Failed'} text to {visit.pet if visit else 'a client'}"
        return what + {"resend": " sent again", "drop": " not sent (phoning instead)"}.get(
            str(e.data.get("decision")), " dismissed")
    if t == "undo":
        return f"Undid {e.data.get('type', 'an action')}" + (f" for {who}" if who else "")
    if t == "ack":
        return "Alert handled" if "seq" in e.data else ("Recovery offered" if "recovery" in e.data else "Reply handled")
    if t == "in_car":
        return f"{who} waiting in the car"
    if t == "reschedule":
        when = e.data.get("scheduled")
        at = f" to {hm(datetime.fromisoformat(when), board.tz)}" if isinstance(when, str) else ""
        return f"{who or 'A client'} moved by the client{at}" + (f" with {vet_name}" if vet_name else "")
    if t == "cancel_visit":
        return f"{who or 'A visit'} cancelled by the client"
    if t == "pms_decision":
        what = "tried again" if e.data.get("decision") == "retry" else "done by hand"
        return f"{who or 'A visit'}: practice-system {e.data.get('action', 'change')} {what}"
    if t == "vet_title":
        return f"{vet_name}'s title in Spanish: {e.data.get('title') or 'none'}"
    if t == "reschedule_request":
        return f"{who or 'A client'}: the client asks to move the visit"
    labels = {"checkin": "checked in", "start": "consult started", "end": "consult ended", "noshow": "no-show",
              "emergency_start": "emergency started", "emergency_end": "emergency ended", "walkin": "walk-in",
              "urgent": "urgent help pressed", "consent": "text consent", "kiosk_unmatched": "unmatched at kiosk"}
    return f"{who} {labels.get(t, t)}".strip()


def helpers(board: Board) -> dict[str, Any]:
    """Template globals bound to this render's clock and timezone."""
    span_total = max(1.0, (board.day_end - board.day_start).total_seconds())

    def pct(t: datetime | None) -> str:
        if t is None:
            return "0"
        return f"{min(100.0, max(0.0, (t - board.day_start).total_seconds() / span_total * 100)):.2f}"

    def span(a: datetime | None, b: datetime | None, minutes: float | None = None) -> str:
        if a is None:
            return "0"
        end = b if b is not None else a + timedelta(minutes=minutes or 0)
        # At least a sliver, so a just-started consult still shows.
        return f"{max(0.4, float(pct(end)) - float(pct(a))):.2f}"

    start = board.day_start.astimezone(board.tz)
    first_hour = start.replace(minute=0, second=0, microsecond=0)
    hours = []
    h = first_hour + timedelta(hours=1) if first_hour < start else first_hour
    while h <= board.day_end:
        hours.append(h)
        h += timedelta(hours=1)
    return {
        "hm": lambda t: hm(t, board.tz),
        "dur": dur,
        "hm5": lambda t, up=False: hm5(t, board.tz, up),
        "mins": mins,
        "pct": pct,
        "span": span,
        "hours": hours,
        "behind_text": behind_text,
        "eta_text": lambda v: eta_text(v, board.now),
        "ordinal": ordinal,
        "describe": lambda e: describe(e, board),
        "board": board,
        "clinic": board.clinic,
        "upcoming_shown": 6,
    }


def render(request: web.Request, template: str, /, **ctx: Any) -> str:
    return request.app[TEMPLATES].get_template(template).render(**ctx)
