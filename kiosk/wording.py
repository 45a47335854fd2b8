"""Sentences for the done screen, built from the server's answers (pure functions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kiosk.i18n import t

EARLY_MIN = 60  # more than this before the booked time counts as early


def sex_key(sex: object) -> str:
    s = str(sex or "").strip().lower()
    return {"female": "f", "f": "f", "male": "m", "m": "m"}.get(s, "u")


def fmt_minutes(lang: str, n: int) -> str:
    """ "45 min", "1 h 40 min", "2 h": as the server's notifier.formats.duration writes them."""
    if n < 60:
        return t(lang, "minutes", n=n)
    if n % 60 == 0:
        return t(lang, "hours_only", h=n // 60)
    return t(lang, "hours", h=n // 60, m=n % 60)


def fmt_time(lang: str, when: datetime) -> str:
    """Clock time in the clinic's own offset (the server sends it that way): "10:35 AM" /
    "10:35", as the server's notifier.formats.clock writes them."""
    if lang == "en":
        return f"{when.hour % 12 or 12}:{when:%M} {'AM' if when.hour < 12 else 'PM'}"
    return when.strftime("%H:%M")


def parse(ts: object) -> datetime | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        return datetime.fromisoformat(ts)
    except ValueError:
        return None


def wait_text(lang: str, estimate: dict[str, Any] | None) -> str:
    if not estimate:
        return t(lang, "wait_unknown")
    wait, low, high = (int(estimate.get(k, 0)) for k in ("wait_min", "low_min", "high_min"))
    if high <= 2:
        return t(lang, "wait_now")
    if high - low < 2:
        return t(lang, "wait_about", wait=fmt_minutes(lang, wait))  # not "about 5 min (5–5 min)"
    low_s = str(low) if high < 60 else fmt_minutes(lang, low)
    return t(lang, "wait", wait=fmt_minutes(lang, wait), low=low_s, high=fmt_minutes(lang, high))


def arrival_note(lang: str, visit: dict[str, Any], now: datetime | None) -> str | None:
    """Fitting words for an early (> 60 min) or late (past the booked time) arrival."""
    scheduled = parse(visit.get("scheduled"))
    if scheduled is None or now is None or visit.get("kind", "appointment") != "appointment":
        return None
    minutes_early = (scheduled - now).total_seconds() / 60
    sk = sex_key(visit.get("sex"))
    pet = str(visit.get("pet", ""))
    if minutes_early > EARLY_MIN:
        return t(lang, "early", pet=pet, time=fmt_time(lang, scheduled))
    if minutes_early < 0:
        obj = t(lang, f"obj_{sk}")
        return t(lang, "late", pet=pet, time=fmt_time(lang, scheduled), obj=obj, obj_cap=obj.capitalize())
    return None


def visit_paragraph(lang: str, visit: dict[str, Any], now: datetime | None, first: bool, consent: bool,
                    last: bool) -> str:
    """ "Thank you. Bella is checked in with Dr. Ruiz. Your wait: about 15 min (10–25 min). …" """
    sk = sex_key(visit.get("sex"))
    pet, vet = str(visit.get("pet", "")), str(visit.get("vet", ""))
    if lang == "es" and visit.get("vet_es"):
        vet = str(visit["vet_es"])  # "la Dra. Ana Ruiz": the server knows the vet's title
    if visit.get("kind") == "walkin":
        parts = [t(lang, "walkin_done", pet=pet, vet=vet)]
    else:
        parts = [t(lang, "thanks")] if first else []
        parts.append(t(lang, f"checked_in_{sk}", pet=pet, vet=vet))
    parts.append(wait_text(lang, visit.get("estimate")))
    if last:
        parts.append(t(lang, "will_text") if consent else t(lang, "no_text"))
    note = arrival_note(lang, visit, now)
    lines = [" ".join(parts), *([note] if note else []), t(lang, f"call_{sk}", pet=pet)]
    return "\n".join(lines)
