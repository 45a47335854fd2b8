"""One way to write a time, a duration and a phone number per language, everywhere: texts,
client pages, the console and the lobby display (the kiosk, which imports nothing of ours,
writes them the same way in kiosk/wording.py; a test holds the two together).

English: "10:35 AM", "45 min", "1 h 40 min", "(312) 555-0100". Spanish: "10:35" (24-hour),
the same durations and the same national phone format.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

import phonenumbers


def lang_of(language: str | None) -> str:
    return "es" if (language or "").lower().startswith("es") else "en"


def clock(t: datetime, tz: tzinfo, language: str = "en") -> str:
    """A time of day in the clinic's zone: "10:35 AM" in English, "10:35" in Spanish."""
    local = t.astimezone(tz)
    if lang_of(language) == "es":
        return f"{local:%H:%M}"
    return f"{local.hour % 12 or 12}:{local:%M} {'AM' if local.hour < 12 else 'PM'}"


def clock_range(a: datetime, b: datetime, tz: tzinfo, language: str = "en") -> str:
    """ "9:50 – 10:20 AM" (one AM/PM when both ends share it), "11:50 AM – 12:20 PM";
    "09:50 – 10:20" in Spanish."""
    lo, hi = clock(a, tz, language), clock(b, tz, language)
    if lo[-3:] == hi[-3:] and lo[-3:] in (" AM", " PM"):
        lo = lo[:-3]
    return f"{lo} – {hi}"


def duration(minutes: float) -> str:
    """A length of time: "45 min" under an hour, "1 h 40 min" or "2 h" from an hour on
    (read the same in English and Spanish)."""
    n = max(0, round(minutes))
    if n < 60:
        return f"{n} min"
    h, m = divmod(n, 60)
    return f"{h} h {m} min" if m else f"{h} h"


def national(number: str | None, region: str | None = None) -> str:
    """A stored (E.164) number the way people write it at home: "(312) 555-0100". Anything
    that does not parse is given back as it was."""
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number, None if number.startswith("+") else (region or "US"))
    except phonenumbers.NumberParseException:
        return number
    if not phonenumbers.is_possible_number(parsed):
        return number
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL))


_TITLE = re.compile(r"^\s*(dr|dra|doctor|doctora)\b\.?\s*", re.IGNORECASE)
TITLES = ("Dr.", "Dra.")


def title_of(value: object) -> str | None:
    """ "Dr." or "Dra." from what an import or the console gave ("dra", "Dra.", "Doctora"); None
    for anything else."""
    s = str(value or "").strip().lower().rstrip(".")
    return {"dr": "Dr.", "doctor": "Dr.", "dra": "Dra.", "doctora": "Dra."}.get(s)


def vet_es(name: str, title: str | None) -> str:
    """A vet as a Spanish sentence names them, with the article: "la Dra. Ana Ruiz", "el Dr. Ben
    Okafor". Without a title (none given), the name as it is: Spanish has no neutral "Dr."."""
    if title not in TITLES:
        return name
    bare = _TITLE.sub("", name).strip() or name
    return f"{'la' if title == 'Dra.' else 'el'} {title} {bare}"


def de_es(vet: str) -> str:
    """ "de la Dra. Ruiz", "del Dr. Okafor" (de + el contracts)."""
    return f"del {vet[3:]}" if vet.startswith("el ") else f"de {vet}"


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]
