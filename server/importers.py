"""Reading a practice-management export into the document `POST /api/schedule` takes.

Pure functions: they take the text of a file (and the clinic's timezone for times written
without an offset) and return the schedule document; nothing here touches the database,
the network or the clock. `parse_schedule_file` is the one function that reads a file.

    {"vets": [{id, name}], "appointment_types": [{id, name, booked_min}],
     "clients": [{id, name, mobile, sms_consent, language, notes}],
     "pets": [{id, client, name, species, sex}],
     "appointments": [{id, vet, type?, pet?, scheduled, booked_min}]}

Vets, types, clients and pets are listed once each (first-seen order) however many
appointments name them; the same id given twice with different details (two names for one
vet, say) is an error rather than a silent choice. A blank cell never conflicts: it means
"not given here". The same input always gives the same document, and ids come from the
file, so importing an export twice upserts the same rows (`POST /api/schedule` is
idempotent by id).

Times come out as ISO 8601 strings with an offset, in the clinic's timezone. Mobile
numbers are passed through as written: the store normalises them with `phonenumbers`.

Every problem raises `ScheduleFileError` (a `ValueError`) whose message names where and
what: ``row 3: start: not a date/time '32/13'`` for CSV (rows counted as a spreadsheet
counts them, the header being row 1), ``line 14: DTSTART: ...`` for iCalendar (the line of
the event's BEGIN:VEVENT). No other exception escapes, whatever the text.

CSV
---
One row per appointment; the first row names the columns, in any order. Column names are
matched ignoring case, surrounding spaces and punctuation ("Appointment ID" is
`appointment_id`); other columns are ignored. A byte-order mark, CRLF line ends, and
semicolon- or tab-separated files (what spreadsheets in many locales save) are accepted.

    appointment_id   required
    start            required: "2024-05-01 09:30", "2024-05-01T09:30", or ISO 8601 with an
                     offset ("2024-05-01T09:30:00-05:00"); without an offset it is read in
                     the clinic's timezone. A date alone is an error.
    duration_min     minutes booked; blank means the type's booked length
    vet_id           required
    vet_name         defaults to the vet id
    type_id          defaults to a slug of type_name ("Dental check" -> "dental-check")
    type_name        defaults to the type id
    type_booked_min  the type's usual length; defaults to the commonest duration_min of
                     that type's rows in the file
    client_id        needed when any client column is filled in
    client_name      required for each client (on at least one of its rows)
    mobile           as written
    sms_consent      yes/no, y/n, true/false, 1/0; blank means no
    language         en or es (a region such as "es-MX" is dropped); blank means en
    notes            free text for reception
    pet_id           defaults to "<client_id>/<pet_name>" when there is a client, so that
                     re-imports find the same pet; with neither, the appointment carries the
                     bare pet name
    pet_name         required for each pet
    species          free text ("dog", "cat")
    sex              F, M, female, male, unknown (also FS / MN: spayed and neutered); blank
                     means unknown

iCalendar (.ics)
----------------
Each VEVENT is one appointment; VEVENTs with STATUS:CANCELLED are skipped, and repeating
events (RRULE/RDATE) and all-day events are errors.

    UID                      the appointment id
    DTSTART                  the scheduled time; a floating time (no TZID, no Z) is read in
                             the clinic's timezone; a TZID must be one the calendar defines
                             (VTIMEZONE) or a known zone name
    DTEND or DURATION        minutes booked; neither means the type's booked length
    X-WAITROOM-VET           vet id; else the ORGANIZER's address (without "mailto:"), else
                             the first ATTENDEE's (ROLE=CHAIR first), else the vet's name
    X-WAITROOM-VET-NAME      else the ORGANIZER's CN, else that ATTENDEE's CN
    X-WAITROOM-TYPE          type id; else a slug of the type name
    X-WAITROOM-TYPE-NAME     else the part in parentheses of SUMMARY "Bella (Vaccination)"
    X-WAITROOM-TYPE-BOOKED-MIN
    X-WAITROOM-CLIENT, X-WAITROOM-CLIENT-NAME, X-WAITROOM-MOBILE,
    X-WAITROOM-SMS-CONSENT, X-WAITROOM-LANGUAGE, X-WAITROOM-NOTES
    X-WAITROOM-PET           pet id (defaults as in CSV)
    X-WAITROOM-PET-NAME      else the part before the parentheses of SUMMARY
    X-WAITROOM-SPECIES, X-WAITROOM-SEX

The X- values follow the CSV columns of the same meaning.

JSON
----
`parse_schedule_file` passes a .json file through `json.loads`; the store validates it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import icalendar

__all__ = ["ScheduleFileError", "parse_csv", "parse_ics", "parse_schedule_file"]

MAX_TEXT = 200  # the store's limit on ids and names
MAX_MINUTES = 24 * 60
_YEARS = range(1900, 2101)  # outside this a time is a typo, and converting it could overflow


class ScheduleFileError(ValueError):
    """A schedule file that cannot be imported.

    `where` is "row 3" (CSV), "line 14" (iCalendar) or None for the whole file; `field`
    is the column or property at fault, or None.
    """

    def __init__(self, message: str, *, where: str | None = None, field: str | None = None) -> None:
        self.where = where
        self.field = field
        self.detail = message
        super().__init__(": ".join(part for part in (where, field, message) if part))


# --- what both formats reduce to -------------------------------------------------------

# The canonical fields of one booking, as text. Each format says what it calls them
# (`labels`), so that messages name the column or property the user wrote.
_TEXT_FIELDS = (
    "appointment_id", "vet_id", "vet_name", "type_id", "type_name", "type_booked_min",
    "client_id", "client_name", "mobile", "sms_consent", "language", "notes",
    "pet_id", "pet_name", "species", "sex",
)  # fmt: skip
_CLIENT_DETAILS = ("client_name", "mobile", "sms_consent", "language", "notes")


@dataclass(frozen=True, slots=True)
class _Booking:
    where: str
    labels: Mapping[str, str]  # canonical field -> its name in the file ("duration" too)
    values: Mapping[str, str]  # canonical field -> non-empty stripped text
    scheduled: datetime  # aware
    duration_min: float | None


class _Entities:
    """Records by id, merged across rows: blanks fill in, differing values are errors."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, object]] = {}
        self.first: dict[str, _Booking] = {}
        self._origin: dict[tuple[str, str], str] = {}

    def put(self, key: str, booking: _Booking, fields: Mapping[str, tuple[str, object]]) -> None:
        """Merge `fields` (name -> (label, value or None)) into the record for `key`."""
        record = self.records.setdefault(key, {})
        self.first.setdefault(key, booking)
        for name, (label, value) in fields.items():
            if value is None:
                continue
            old = record.get(name)
            if old is None:
                record[name] = value
                self._origin[(key, name)] = booking.where
            elif old != value:
                raise ScheduleFileError(
                    f"{_show(value)} differs from {_show(old)} given for {key!r} at {self._origin[(key, name)]}",
                    where=booking.where,
                    field=label,
                )


def _show(value: object) -> str:
    return repr(value[:40]) if isinstance(value, str) else repr(value)


def _fail(booking: _Booking, name: str, message: str) -> ScheduleFileError:
    return ScheduleFileError(message, where=booking.where, field=booking.labels.get(name, name))


def _text(booking: _Booking, name: str, *, limit: int | None = MAX_TEXT) -> str | None:
    value = booking.values.get(name)
    if value is not None and limit is not None and len(value) > limit:
        raise _fail(booking, name, f"longer than {limit} characters")
    return value


_TRUE = {"yes", "y", "true", "t", "1"}
_FALSE = {"no", "n", "false", "f", "0"}


def _consent(booking: _Booking) -> bool | None:
    raw = booking.values.get("sms_consent")
    if raw is None:
        return None
    word = raw.casefold()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise _fail(booking, "sms_consent", f"expected yes or no, got {raw[:40]!r}")


_LANGUAGES = ("en", "es")


def _language(booking: _Booking) -> str | None:
    raw = booking.values.get("language")
    if raw is None:
        return None
    lang = re.split(r"[-_]", raw.casefold(), maxsplit=1)[0]
    if lang not in _LANGUAGES:
        raise _fail(booking, "language", f"expected en or es, got {raw[:40]!r}")
    return lang


# Vet systems often record neutering in the sex field; the store only needs the sex.
_SEXES = {
    "f": "female", "female": "female", "fs": "female", "f/s": "female", "female spayed": "female",
    "spayed female": "female",
    "m": "male", "male": "male", "mn": "male", "m/n": "male", "mc": "male", "male neutered": "male",
    "neutered male": "male", "male castrated": "male",
    "u": "unknown", "unknown": "unknown",
}  # fmt: skip


def _sex(booking: _Booking) -> str | None:
    raw = booking.values.get("sex")
    if raw is None:
        return None
    sex = _SEXES.get(" ".join(raw.casefold().split()))
    if sex is None:
        raise _fail(booking, "sex", f"expected F, M or unknown, got {raw[:40]!r}")
    return sex


_NUMBER = re.compile(r"^[0-9]{1,6}(?:\.[0-9]{1,6})?$")


def _minutes_text(raw: str) -> float | None:
    """Minutes from text such as "15" or "7.5"; None when it is no number of minutes."""
    if not _NUMBER.match(raw):
        return None
    value = float(raw)
    return value if 0 < value <= MAX_MINUTES else None


def _minutes_field(booking: _Booking, name: str) -> float | None:
    raw = booking.values.get(name)
    if raw is None:
        return None
    value = _minutes_text(raw)
    if value is None:
        raise _fail(booking, name, f"expected minutes between 1 and {MAX_MINUTES}, got {raw[:40]!r}")
    return value


def _number_out(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def _slug(name: str) -> str:
    slug = re.sub(r"[^0-9a-z]+", "-", name.casefold()).strip("-")
    return slug or " ".join(name.casefold().split())


def _check_year(t: datetime, where: str, field: str) -> None:
    if t.year not in _YEARS:
        raise ScheduleFileError(f"year {t.year} is out of range", where=where, field=field)


def _assemble(bookings: list[_Booking], tz: tzinfo) -> dict[str, Any]:
    """The schedule document for `bookings`, checking what the store would otherwise reject."""
    vets, types, clients, pets = _Entities(), _Entities(), _Entities(), _Entities()
    type_durations: dict[str, Counter[float]] = {}
    appointments: dict[str, tuple[_Booking, dict[str, Any]]] = {}
    for b in bookings:
        lab = b.labels
        appointment_id = _text(b, "appointment_id")
        if appointment_id is None:
            raise _fail(b, "appointment_id", "missing")
        vet_id = _text(b, "vet_id")
        if vet_id is None:
            raise _fail(b, "vet_id", "missing")
        vets.put(vet_id, b, {"name": (lab["vet_name"], _text(b, "vet_name"))})

        type_name = _text(b, "type_name")
        type_id = _text(b, "type_id") or (_slug(type_name) if type_name else None)
        if type_id is not None:
            types.put(
                type_id,
                b,
                {
                    "name": (lab["type_name"], type_name),
                    "booked_min": (lab["type_booked_min"], _minutes_field(b, "type_booked_min")),
                },
            )
            if b.duration_min is not None:
                type_durations.setdefault(type_id, Counter())[b.duration_min] += 1
        elif b.duration_min is None:
            raise _fail(b, "duration", "needed when the appointment has no type")

        client_id = _text(b, "client_id")
        if client_id is None:
            given = [name for name in _CLIENT_DETAILS if name in b.values]
            if given:
                raise _fail(b, "client_id", f"missing, but {lab[given[0]]} is given")
        else:
            clients.put(
                client_id,
                b,
                {
                    "name": (lab["client_name"], _text(b, "client_name")),
                    "mobile": (lab["mobile"], _text(b, "mobile", limit=60)),
                    "sms_consent": (lab["sms_consent"], _consent(b)),
                    "language": (lab["language"], _language(b)),
                    "notes": (lab["notes"], _text(b, "notes", limit=2000)),
                },
            )

        pet_name = _text(b, "pet_name")
        pet_id = _text(b, "pet_id")
        if pet_id is None and client_id is not None and pet_name is not None:
            pet_id = f"{client_id}/{pet_name}"[:MAX_TEXT]
        if pet_id is not None:
            pets.put(
                pet_id,
                b,
                {
                    "client": (lab["client_id"], client_id),
                    "name": (lab["pet_name"], pet_name),
                    "species": (lab["species"], _text(b, "species")),
                    "sex": (lab["sex"], _sex(b)),
                },
            )
        else:
            # Without a pet id there is no pet record: validate what is dropped anyway.
            _text(b, "species")
            _sex(b)

        appointment: dict[str, Any] = {"id": appointment_id, "vet": vet_id}
        if type_id is not None:
            appointment["type"] = type_id
        pet_ref = pet_id if pet_id is not None else pet_name
        if pet_ref is not None:
            appointment["pet"] = pet_ref
        appointment["scheduled"] = b.scheduled.astimezone(tz).isoformat()
        appointment["booked_min"] = b.duration_min  # filled from the type below when None
        earlier = appointments.get(appointment_id)
        if earlier is None:
            appointments[appointment_id] = (b, appointment)
        elif earlier[1] != appointment:
            raise _fail(b, "appointment_id", f"{appointment_id!r} is also at {earlier[0].where}, with other details")

    type_booked: dict[str, float] = {}
    type_list = []
    for type_id, record in types.records.items():
        booked = record.get("booked_min")
        if booked is None:
            durations = type_durations.get(type_id)
            if not durations:
                b = types.first[type_id]
                raise _fail(b, "duration", f"needed: type {type_id!r} has no booked length in the file")
            # The commonest length; on a tie the shorter, so that the choice is stable.
            booked = min(durations, key=lambda d: (-durations[d], d))
        assert isinstance(booked, float)
        type_booked[type_id] = booked
        type_list.append({"id": type_id, "name": record.get("name") or type_id, "booked_min": _number_out(booked)})

    client_list = []
    for client_id, record in clients.records.items():
        if record.get("name") is None:
            b = clients.first[client_id]
            raise _fail(b, "client_name", f"missing for client {client_id!r}")
        client_list.append(
            {
                "id": client_id,
                "name": record["name"],
                "mobile": record.get("mobile"),
                "sms_consent": record.get("sms_consent", False),
                "language": record.get("language", "en"),
                "notes": record.get("notes", ""),
            }
        )

    pet_list = []
    for pet_id, record in pets.records.items():
        if record.get("name") is None:
            b = pets.first[pet_id]
            raise _fail(b, "pet_name", f"missing for pet {pet_id!r}")
        pet_list.append(
            {
                "id": pet_id,
                "client": record.get("client"),
                "name": record["name"],
                "species": record.get("species"),
                "sex": record.get("sex", "unknown"),
            }
        )

    appointment_list = []
    for _, appointment in appointments.values():
        minutes = appointment["booked_min"]
        if minutes is None:
            minutes = type_booked[appointment["type"]]
        appointment["booked_min"] = _number_out(minutes)
        appointment_list.append(appointment)

    return {
        "vets": [{"id": k, "name": r.get("name") or k} for k, r in vets.records.items()],
        "appointment_types": type_list,
        "clients": client_list,
        "pets": pet_list,
        "appointments": appointment_list,
    }


# --- CSV -------------------------------------------------------------------------------

_CSV_COLUMNS = ("start", "duration_min", *_TEXT_FIELDS)
_CSV_REQUIRED = ("appointment_id", "start", "vet_id")
_CSV_LABELS: Mapping[str, str] = {**{name: name for name in _CSV_COLUMNS}, "duration": "duration_min"}
_HAS_TIME = re.compile(r"^\d{4}-?\d{2}-?\d{2}[Tt ]\d")


def _column_key(header: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", header.strip().casefold()).strip("_")


def _delimiter(text: str) -> str:
    # Spreadsheets in locales with a decimal comma save ";"-separated "CSV".
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def _parse_start(raw: str, tz: tzinfo, where: str) -> datetime:
    if not _HAS_TIME.match(raw):
        raise ScheduleFileError(f"not a date/time {raw[:40]!r} (expected YYYY-MM-DD HH:MM)", where=where, field="start")
    try:
        t = datetime.fromisoformat(raw)
    except ValueError as e:
        raise ScheduleFileError(
            f"not a date/time {raw[:40]!r} (expected YYYY-MM-DD HH:MM)", where=where, field="start"
        ) from e
    _check_year(t, where, "start")
    return t if t.tzinfo is not None else t.replace(tzinfo=tz)


def _csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    number = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ScheduleFileError(f"unreadable CSV ({e})", where=f"row {number + 1}") from e
        number += 1
        yield number, row


def parse_csv(text: str, *, default_tz: tzinfo) -> dict[str, Any]:
    """The schedule document for a CSV export (one row per appointment; see the module doc)."""
    text = text.removeprefix("\ufeff")
    columns: dict[str, int] | None = None
    width = 0
    bookings: list[_Booking] = []
    for number, row in _csv_rows(text):
        where = f"row {number}"
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if columns is None:
            columns = {}
            for i, cell in enumerate(cells):
                key = _column_key(cell.removeprefix("\ufeff"))
                if key not in _CSV_COLUMNS:
                    continue
                if key in columns:
                    raise ScheduleFileError(f"column {key!r} appears twice", where=where, field="header")
                columns[key] = i
            for key in _CSV_REQUIRED:
                if key not in columns:
                    raise ScheduleFileError(f"missing column {key!r}", where=where, field="header")
            width = len(cells)
            continue
        if any(cells[width:]):
            raise ScheduleFileError(f"{len(cells)} fields, but the header has {width} columns", where=where)
        values = {key: cells[i] for key, i in columns.items() if i < len(cells) and cells[i]}
        start = values.pop("start", None)
        if start is None:
            raise ScheduleFileError("missing", where=where, field="start")
        scheduled = _parse_start(start, default_tz, where)
        duration_raw = values.pop("duration_min", None)
        duration = None
        if duration_raw is not None:
            duration = _minutes_text(duration_raw)
            if duration is None:
                raise ScheduleFileError(
                    f"expected minutes between 1 and {MAX_MINUTES}, got {duration_raw[:40]!r}",
                    where=where,
                    field="duration_min",
                )
        bookings.append(_Booking(where, _CSV_LABELS, values, scheduled, duration))
    if columns is None:
        raise ScheduleFileError("no header row: the file is empty")
    return _assemble(bookings, default_tz)


# --- iCalendar -------------------------------------------------------------------------

_ICS_X = {
    "vet_id": "X-WAITROOM-VET",
    "vet_name": "X-WAITROOM-VET-NAME",
    "type_id": "X-WAITROOM-TYPE",
    "type_name": "X-WAITROOM-TYPE-NAME",
    "type_booked_min": "X-WAITROOM-TYPE-BOOKED-MIN",
    "client_id": "X-WAITROOM-CLIENT",
    "client_name": "X-WAITROOM-CLIENT-NAME",
    "mobile": "X-WAITROOM-MOBILE",
    "sms_consent": "X-WAITROOM-SMS-CONSENT",
    "language": "X-WAITROOM-LANGUAGE",
    "notes": "X-WAITROOM-NOTES",
    "pet_id": "X-WAITROOM-PET",
    "pet_name": "X-WAITROOM-PET-NAME",
    "species": "X-WAITROOM-SPECIES",
    "sex": "X-WAITROOM-SEX",
}
_ICS_LABELS: Mapping[str, str] = {"appointment_id": "UID", "duration": "DTEND", **_ICS_X}
_SUMMARY = re.compile(r"^(?P<pet>.*?)\s*\((?P<type>[^()]*)\)\s*$", re.DOTALL)
_TEXT_ESCAPE = re.compile(r"\\([\\;,nN])")


def _unescape(value: str) -> str:
    # Properties icalendar does not know (X-) come back still escaped (RFC 5545 3.3.11).
    return _TEXT_ESCAPE.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _events(components: Sequence[icalendar.Component]) -> list[icalendar.Component]:
    """Every VEVENT in document order (iteratively: a hostile file may nest deeply)."""
    found: list[icalendar.Component] = []
    stack = list(reversed(components))
    while stack:
        component = stack.pop()
        if component.name == "VEVENT":
            found.append(component)
        stack.extend(reversed(component.subcomponents))
    return found


class _Event:
    """One VEVENT's properties, read with errors that name the event's line and property."""

    def __init__(self, event: icalendar.Component, where: str, tz: tzinfo) -> None:
        self.event = event
        self.where = where
        self.tz = tz
        self.broken = {str(name).upper(): str(message) for name, message in event.errors}

    def fail(self, name: str, message: str) -> ScheduleFileError:
        return ScheduleFileError(message, where=self.where, field=name)

    def one(self, name: str) -> object | None:
        value: object = self.event.get(name)
        if isinstance(value, list):
            raise self.fail(name, "given more than once")
        if isinstance(value, icalendar.vBroken) or name in self.broken:
            raise self.fail(name, f"unreadable ({self.broken.get(name, 'bad value')[:80]})")
        return value

    def text(self, name: str) -> str | None:
        value = self.one(name)
        if value is None:
            return None
        if isinstance(value, icalendar.vText):
            text = str(value)
        elif isinstance(value, str):
            text = _unescape(str(value))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            text = str(value)
        else:
            raise self.fail(name, "expected text")
        return text.strip() or None

    def time(self, name: str) -> datetime | None:
        prop = self.one(name)
        if prop is None:
            return None
        value = getattr(prop, "dt", None) if isinstance(prop, icalendar.vDDDTypes) else None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                tzid = getattr(prop, "params", {}).get("TZID")
                if tzid:
                    raise self.fail(name, f"unknown time zone {str(tzid)[:40]!r}")
                value = value.replace(tzinfo=self.tz)  # a floating time: the clinic's clock
            _check_year(value, self.where, name)
            return value
        if isinstance(value, date):
            raise self.fail(name, "an all-day event is not an appointment (give a time of day)")
        raise self.fail(name, "expected a date-time")

    def duration(self) -> timedelta | None:
        prop = self.one("DURATION")
        if prop is None:
            return None
        value = getattr(prop, "dt", None) if isinstance(prop, icalendar.vDDDTypes) else None
        if not isinstance(value, timedelta):
            raise self.fail("DURATION", "expected a duration such as PT15M")
        return value

    def address(self, prop: object) -> tuple[str | None, str | None]:
        """(address without mailto:, CN) of an ORGANIZER or ATTENDEE."""
        if not isinstance(prop, str):
            return None, None
        address = re.sub(r"^mailto:", "", str(prop).strip(), flags=re.IGNORECASE).strip().casefold()
        cn = str(getattr(prop, "params", {}).get("CN") or "").strip()
        return address or None, cn or None


def _vet_contact(ev: _Event) -> tuple[str, str | None, str | None]:
    """Who the vet is when X-WAITROOM-VET is missing: (label, address, CN)."""
    organizer = ev.event.get("ORGANIZER")
    if organizer is not None and not isinstance(organizer, list):
        address, cn = ev.address(organizer)
        if address or cn:
            return "ORGANIZER", address, cn
    attendees = ev.event.get("ATTENDEE")
    if attendees is None:
        return "ATTENDEE", None, None
    if not isinstance(attendees, list):
        attendees = [attendees]
    chairs = [a for a in attendees if str(getattr(a, "params", {}).get("ROLE", "")).upper() == "CHAIR"]
    for attendee in chairs + [a for a in attendees if a not in chairs]:
        address, cn = ev.address(attendee)
        if address or cn:
            return "ATTENDEE", address, cn
    return "ATTENDEE", None, None


def _ics_booking(ev: _Event) -> _Booking | None:
    status = ev.text("STATUS")
    if status is not None and status.upper() == "CANCELLED":
        return None
    for name in ("RRULE", "RDATE"):
        if ev.event.get(name) is not None:
            raise ev.fail(name, "repeating events are not supported: export each appointment")
    labels = dict(_ICS_LABELS)
    values: dict[str, str] = {}
    uid = ev.text("UID")
    if uid is None:
        raise ev.fail("UID", "missing")
    values["appointment_id"] = uid
    for key, prop in _ICS_X.items():
        text = ev.text(prop)
        if text is not None:
            values[key] = text

    if "vet_id" not in values or "vet_name" not in values:
        label, address, cn = _vet_contact(ev)
        if "vet_name" not in values and cn is not None:
            values["vet_name"], labels["vet_name"] = cn, f"{label} CN"
        if "vet_id" not in values:
            fallback = address or values.get("vet_name")
            if fallback is None:
                raise ev.fail("X-WAITROOM-VET", "missing (and no ORGANIZER or ATTENDEE to stand in)")
            values["vet_id"], labels["vet_id"] = fallback, label if address else labels["vet_name"]

    summary = ev.text("SUMMARY")
    match = _SUMMARY.match(summary) if summary is not None else None
    if match is not None:
        pet, type_name = match.group("pet").strip(), match.group("type").strip()
        if "pet_name" not in values and pet:
            values["pet_name"], labels["pet_name"] = pet, "SUMMARY"
        if "type_name" not in values and type_name:
            values["type_name"], labels["type_name"] = type_name, "SUMMARY"

    start = ev.time("DTSTART")
    if start is None:
        raise ev.fail("DTSTART", "missing")
    end = ev.time("DTEND")
    length: timedelta | None
    if end is not None:
        length = end - start
    else:
        length = ev.duration()
        labels["duration"] = "DTEND or DURATION" if length is None else "DURATION"
    minutes = None
    if length is not None:
        minutes = length.total_seconds() / 60
        if not 0 < minutes <= MAX_MINUTES:
            raise ev.fail(labels["duration"], f"the event lasts {minutes:g} minutes (expected 1 to {MAX_MINUTES})")
    return _Booking(ev.where, labels, values, start, minutes)


def parse_ics(text: str, *, default_tz: tzinfo) -> dict[str, Any]:
    """The schedule document for an iCalendar export (one VEVENT per appointment)."""
    # Bytes, not str: icalendar reads a str without line breaks as a path to open.
    data = text.encode("utf-8", "replace")
    try:
        components = icalendar.Calendar.from_ical(data, multiple=True)
    except Exception as e:  # icalendar documents no exception set; ValueError is the usual one
        raise ScheduleFileError(f"not an iCalendar file ({str(e)[:120]})") from e
    if not components:
        raise ScheduleFileError(
            "not an iCalendar file: no complete BEGIN:VCALENDAR ... END:VCALENDAR (is it cut short?)"
        )
    events = _events(components)
    begins = [n for n, line in enumerate(re.split(r"\r?\n", text), start=1) if line.strip().upper() == "BEGIN:VEVENT"]
    if len(begins) > len(events):
        raise ScheduleFileError(
            f"{len(begins)} BEGIN:VEVENT lines but {len(events)} complete events: is the file cut short?"
        )
    bookings = []
    for i, event in enumerate(events):
        where = f"line {begins[i]}" if len(begins) == len(events) else f"event {i + 1}"
        booking = _ics_booking(_Event(event, where, default_tz))
        if booking is not None:
            bookings.append(booking)
    return _assemble(bookings, default_tz)


# --- files -----------------------------------------------------------------------------


def parse_schedule_file(path: Path, *, default_tz: tzinfo) -> dict[str, Any]:
    """Read an export and parse it by its suffix: .csv, .ics or .json (passed through)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".ics", ".json"):
        raise ScheduleFileError(f"{path.name}: expected a .csv, .ics or .json file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise ScheduleFileError(f"{path}: cannot read ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        raise ScheduleFileError(
            f"{path.name}: not UTF-8 text (byte {e.start}); export or save the file as UTF-8"
        ) from e
    if suffix == ".csv":
        return parse_csv(text, default_tz=default_tz)
    if suffix == ".ics":
        return parse_ics(text, default_tz=default_tz)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ScheduleFileError(f"not JSON ({e.msg})", where=f"line {e.lineno}") from e
    except RecursionError as e:
        raise ScheduleFileError("not JSON (nested too deeply)") from e
    if not isinstance(doc, dict):
        raise ScheduleFileError("expected a JSON object with vets, appointment_types, ... lists")
    return doc
