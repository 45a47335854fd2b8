"""Reading a practice-management or calendar export into the document `POST /api/schedule` takes.

Pure functions: they take the text of a file (and the clinic's timezone, region and date
order) and return the schedule document; nothing here touches the database, the network or
the clock. `read_schedule_file` is the one function that reads a file.

    {"vets": [{id, name}], "appointment_types": [{id, name, booked_min}],
     "clients": [{id, name, mobile, sms_consent, language, notes}],
     "pets": [{id, client, name, species, sex}],
     "appointments": [{id, vet, type?, pet?, scheduled, booked_min}],
     "blocks": [{id, vet, start, end, reason}]}          (only when a calendar has some)

Vets, types, clients and pets are listed once each (first-seen order) however many
appointments name them; the same id given twice with different details (two names for one
vet, say) is a problem of the later row rather than a silent choice. A blank cell never
conflicts: it means "not given here". The same input always gives the same document, and ids
come from the file, so importing an export twice upserts the same rows.

One bad row does not cost the day: `read_csv` / `read_ics` return a `ParsedSchedule` with the
document of every good row and, in `skipped`, a `ScheduleFileError` for each row left out
(``row 41: Mobile: not a valid phone number '555-01'``: rows counted as the spreadsheet shows
them, the header being row 1, and the column named as its header is written; ``line 14:
DTSTART: ...`` for a calendar, the line of the event's BEGIN:VEVENT). A row that only repeats
or agrees with the good rows is never the one left out: of two rows that disagree (two names
for one client id), the later one is. `parse_csv` / `parse_ics` / `parse_schedule_file` are
the all-or-nothing forms: they raise the first problem. A problem with the whole file (not
CSV, no header, dates whose order cannot be known) always raises. No other exception escapes,
whatever the text.

Times come out as ISO 8601 strings with an offset, in the clinic's timezone. Mobile numbers
are checked with `phonenumbers` for the clinic's region when one is given, and passed through
as written (the store keeps E.164); a landline or toll-free number is listed in `no_texts`.

The user-facing description of what is accepted is README's "Importing the schedule".

CSV
---
One row per appointment; the first row names the columns, in any order. Column names are
matched ignoring case, surrounding spaces and punctuation ("Appointment ID" is
`appointment_id`); other columns are ignored. UTF-8 (with or without a byte-order mark),
UTF-16 with a byte-order mark (Excel's "Unicode Text", tab-separated) and, failing UTF-8,
Windows-1252 (Excel's "CSV (Comma delimited)" on Windows) are read; CRLF line ends and
semicolon- or tab-separated files (what spreadsheets in many locales save) are accepted.

    appointment_id   required
    start            required: ISO ("2026-11-27 14:30", "2026-11-27T14:30:00-06:00"; without
                     an offset read in the clinic's timezone), or as Excel writes it:
                     "11/27/2026 2:30 PM", "27/11/2026 14:30", "27.11.2026 14:30",
                     "2026/11/27 14:30" (12- or 24-hour clock, seconds optional). The order of
                     day and month is `date_order` when given, else what the file's own rows
                     prove (a 27 can only be a day), else the clinic's region
                     (`region_date_order`), else a file of ambiguous dates is refused.
                     A date alone is an error.
    duration_min     minutes booked; blank means the type's booked length
    vet_id           required
    vet_name         defaults to the vet id
    type_id          defaults to a slug of type_name ("Dental check" -> "dental-check")
    type_name        defaults to the type id
    type_booked_min  the type's usual length; defaults to the commonest duration_min of
                     that type's rows in the file
    client_id        needed when any client column is filled in
    client_name      required for each client (on at least one of its rows)
    mobile           as written; checked for the clinic's region; "1.31256E+10" (what Excel
                     saves for a number typed into a General cell) is refused with how to fix it
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
Each VEVENT is an appointment, or the vet's blocked time when it names no client, no pet and
no type (a staff meeting, lunch, surgery). Not imported, each with a note in `ignored`:
STATUS:CANCELLED (silently), all-day events, and events marked free (TRANSP:TRANSPARENT).
Repeating events (RRULE, RDATE, moved occurrences with RECURRENCE-ID) are expanded with
`recurring_ical_events` on the imported days: `day` when given, else the days of the file's
one-off events (at most `MAX_DAYS`), else `today`. Each occurrence's id is "<UID>@<UTC start>".

    UID                      the appointment id
    DTSTART                  the scheduled time; a floating time (no TZID, no Z) is read in
                             the clinic's timezone; a TZID must be one the calendar defines
                             (VTIMEZONE) or a known zone name
    DTEND or DURATION        minutes booked; neither means the type's booked length
    X-WAITROOM-VET           vet id; else `vet` (the `--vet` of a one-vet calendar), else the
                             ORGANIZER's address (without "mailto:"), else the first
                             ATTENDEE's (ROLE=CHAIR first), else the vet's name
    X-WAITROOM-VET-NAME      else the ORGANIZER's CN, else that ATTENDEE's CN
    X-WAITROOM-TYPE          type id; else a slug of the type name
    X-WAITROOM-TYPE-NAME     else the part in parentheses of SUMMARY "Bella (Vaccination)"
    X-WAITROOM-TYPE-BOOKED-MIN
    X-WAITROOM-CLIENT, X-WAITROOM-CLIENT-NAME, X-WAITROOM-MOBILE,
    X-WAITROOM-SMS-CONSENT, X-WAITROOM-LANGUAGE, X-WAITROOM-NOTES
    X-WAITROOM-PET           pet id (defaults as in CSV)
    X-WAITROOM-PET-NAME      else the part before the parentheses of SUMMARY
    X-WAITROOM-SPECIES, X-WAITROOM-SEX
    SUMMARY                  of blocked time: its reason (not for CLASS:PRIVATE/CONFIDENTIAL)

The X- values follow the CSV columns of the same meaning.

JSON
----
`read_schedule_file` passes a .json file through `json.loads`; the store validates it, all or
nothing (a practice system's push is a program's output: a bad field is its bug to fix).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any

import icalendar
import recurring_ical_events

from server.phones import PhoneError, line_kind, normalise

__all__ = [
    "DATE_ORDERS", "ImportOptions", "Note", "ParsedSchedule", "ScheduleFileError", "parse_csv", "parse_ics",
    "parse_schedule_file", "read_csv", "read_ics", "read_schedule_file", "region_date_order",
]  # fmt: skip

MAX_TEXT = 200  # the store's limit on ids and names
MAX_MINUTES = 24 * 60
_YEARS = range(1900, 2101)  # outside this a time is a typo, and converting it could overflow
MAX_DAYS = 14  # a calendar with repeating events, read without `day`: at most this many days
MAX_OCCURRENCES = 48  # one repeating event on one day: more is no vet's calendar (FREQ=MINUTELY)
DATE_ORDERS = ("dmy", "mdy", "ymd")
_ORDER_WORDS = {"dmy": "day/month/year", "mdy": "month/day/year", "ymd": "year/month/day"}


class ScheduleFileError(ValueError):
    """A schedule file, or one row or event of it, that cannot be imported.

    `where` is "row 3" (CSV), "line 14" (iCalendar) or None for the whole file; `field`
    is the column (as its header is written) or property at fault, or None.
    """

    def __init__(self, message: str, *, where: str | None = None, field: str | None = None) -> None:
        self.where = where
        self.field = field
        self.detail = message
        super().__init__(": ".join(part for part in (where, field, message) if part))


@dataclass(frozen=True, slots=True)
class Note:
    """Something reception should know about a row that is no error: an event left out by
    design (all-day, free), a number that cannot take a text."""

    where: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        return ": ".join(part for part in (self.where, self.field, self.message) if part)


@dataclass(slots=True)
class ParsedSchedule:
    """A file's importable document, and what was left out of it and why."""

    doc: dict[str, Any]
    skipped: list[ScheduleFileError] = field(default_factory=list)  # something wrong: not imported
    ignored: list[Note] = field(default_factory=list)  # not appointments (all-day, free): not imported
    no_texts: list[Note] = field(default_factory=list)  # imported, but the number cannot take a text

    def strict(self) -> dict[str, Any]:
        """The document, or the first problem raised: all or nothing."""
        if self.skipped:
            raise self.skipped[0]
        return self.doc


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What the clinic knows that the file does not say."""

    region: str | None = None  # the clinic's region ("US"): reads phone numbers and, by default, dates
    date_order: str | None = None  # "dmy", "mdy" or "ymd": --date-order or the clinic's setting
    date_order_source: str = "--date-order"  # where `date_order` came from, for messages
    vet: tuple[str, str] | None = None  # (id, name): a calendar that is one vet's (--vet)
    day: date | None = None  # calendar: import this day only (--day)
    today: date | None = None  # calendar with nothing but repeating events: read for this day


_MDY_REGIONS = frozenset({"US", "PR", "GU", "VI", "AS", "MP", "UM", "PH", "FM", "MH", "PW", "BZ"})
_YMD_REGIONS = frozenset({"CN", "JP", "KR", "KP", "TW", "HU", "LT", "MN", "IR", "BT"})
# English Canada's Excel writes either order (the OS setting decides): no default there.
_NO_DEFAULT_REGIONS = frozenset({"CA"})


def region_date_order(region: str | None) -> str | None:
    """The order of day and month Excel writes by default in `region` ("US" -> "mdy"), None
    where it varies (Canada) or the region is not a country code."""
    code = (region or "").strip().upper()
    if len(code) != 2 or not code.isalpha() or code in _NO_DEFAULT_REGIONS:
        return None
    if code in _MDY_REGIONS:
        return "mdy"
    if code in _YMD_REGIONS:
        return "ymd"
    return "dmy"


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
    order: int  # position in the file: messages are listed in file order
    where: str
    labels: Mapping[str, str]  # canonical field -> its name in the file ("duration" too)
    values: Mapping[str, str]  # canonical field -> non-empty stripped text
    scheduled: datetime  # aware
    duration_min: float | None
    block: bool = False  # the vet's blocked time (a calendar event with no client, pet or type)


_Fields = dict[str, tuple[str, object]]  # name -> (label, value or None)


@dataclass(slots=True)
class _Row:
    """One booking, checked on its own: what it adds to each list of the document."""

    booking: _Booking
    kind: str  # "appointments" or "blocks"
    item: dict[str, Any]
    puts: list[tuple[str, str, _Fields]]  # (entity list, id, fields)
    no_text: Note | None = None
    client: str | None = None


class _Entities:
    """Records by id, merged across rows: blanks fill in, differing values are conflicts."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, object]] = {}
        self._origin: dict[tuple[str, str], str] = {}

    def conflict(self, key: str, booking: _Booking, fields: _Fields) -> ScheduleFileError | None:
        record = self.records.get(key, {})
        for name, (label, value) in fields.items():
            old = record.get(name)
            if value is not None and old is not None and old != value:
                return ScheduleFileError(
                    f"{_show(value)} differs from {_show(old)} given for {key!r} at {self._origin[(key, name)]}",
                    where=booking.where,
                    field=label,
                )
        return None

    def put(self, key: str, booking: _Booking, fields: _Fields) -> None:
        record = self.records.setdefault(key, {})
        for name, (_, value) in fields.items():
            if value is not None and record.get(name) is None:
                record[name] = value
                self._origin[(key, name)] = booking.where


def _show(value: object) -> str:
    return repr(value[:40]) if isinstance(value, str) else repr(value)


def _fail(booking: _Booking, name: str, message: str) -> ScheduleFileError:
    return ScheduleFileError(message, where=booking.where, field=booking.labels.get(name, name))


def _text(booking: _Booking, name: str, *, limit: int | None = MAX_TEXT) -> str | None:
    value = booking.values.get(name)
    if value is not None and limit is not None and len(value) > limit:
        raise _fail(booking, name, f"longer than {limit} characters")
    return value


_TRUE = {"yes", "y", "true", "t", "1", "sí", "si"}
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


# What Excel saves for a long number typed into a "General" cell: the digits past the sixth
# are gone, so there is nothing to repair, only to tell the user how to keep them.
_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d+)?[eE][+]?\d+$")


def _mobile(b: _Booking, region: str | None) -> tuple[str | None, Note | None]:
    raw = _text(b, "mobile", limit=60)
    if raw is None:
        return None, None
    label = b.labels.get("mobile", "mobile")
    if _SCIENTIFIC.match(raw.replace(" ", "")):
        raise _fail(
            b,
            "mobile",
            f"{raw!r} is how Excel shows a long number, and its last digits are lost: in Excel, select the "
            f"{label} column, Format Cells > Text, type or paste the numbers again, and save the CSV again",
        )
    if region is None:
        return raw, None
    try:
        kind = line_kind(normalise(raw, region))
    except PhoneError as e:
        raise _fail(b, "mobile", str(e)) from e
    if kind is None:
        return raw, None
    return raw, Note(b.where, label, f"{raw!r} is a {kind}: it cannot take texts (reception sees it in the console)")


def _prepare(b: _Booking, tz: tzinfo, region: str | None) -> _Row:
    """Everything one booking says, checked on its own (raises ScheduleFileError)."""
    lab = b.labels
    appointment_id = _text(b, "appointment_id")
    if appointment_id is None:
        raise _fail(b, "appointment_id", "missing")
    vet_id = _text(b, "vet_id")
    if vet_id is None:
        raise _fail(b, "vet_id", "missing")
    puts: list[tuple[str, str, _Fields]] = [("vets", vet_id, {"name": (lab["vet_name"], _text(b, "vet_name"))})]
    if b.block:
        if b.duration_min is None:
            raise _fail(b, "duration", "needed: blocked time needs an end")
        end = b.scheduled + timedelta(minutes=b.duration_min)
        block = {
            "id": appointment_id,
            "vet": vet_id,
            "start": b.scheduled.astimezone(tz).isoformat(),
            "end": end.astimezone(tz).isoformat(),
            "reason": _text(b, "reason") or "",
        }
        return _Row(b, "blocks", block, puts)

    type_name = _text(b, "type_name")
    type_id = _text(b, "type_id") or (_slug(type_name) if type_name else None)
    if type_id is not None:
        puts.append(("types", type_id, {
            "name": (lab["type_name"], type_name),
            "booked_min": (lab["type_booked_min"], _minutes_field(b, "type_booked_min")),
        }))  # fmt: skip
    elif b.duration_min is None:
        raise _fail(b, "duration", "needed when the appointment has no type")

    client_id = _text(b, "client_id")
    no_text = None
    if client_id is None:
        given = [name for name in _CLIENT_DETAILS if name in b.values]
        if given:
            raise _fail(b, "client_id", f"missing, but {lab[given[0]]} is given")
    else:
        mobile, no_text = _mobile(b, region)
        puts.append(("clients", client_id, {
            "name": (lab["client_name"], _text(b, "client_name")),
            "mobile": (lab["mobile"], mobile),
            "sms_consent": (lab["sms_consent"], _consent(b)),
            "language": (lab["language"], _language(b)),
            "notes": (lab["notes"], _text(b, "notes", limit=2000)),
        }))  # fmt: skip

    pet_name = _text(b, "pet_name")
    pet_id = _text(b, "pet_id")
    if pet_id is None and client_id is not None and pet_name is not None:
        pet_id = f"{client_id}/{pet_name}"[:MAX_TEXT]
    if pet_id is not None:
        puts.append(("pets", pet_id, {
            "client": (lab["client_id"], client_id),
            "name": (lab["pet_name"], pet_name),
            "species": (lab["species"], _text(b, "species")),
            "sex": (lab["sex"], _sex(b)),
        }))  # fmt: skip
    else:
        # Without a pet id there is no pet record: validate what is dropped anyway.
        _text(b, "species")
        _sex(b)

    item: dict[str, Any] = {"id": appointment_id, "vet": vet_id}
    if type_id is not None:
        item["type"] = type_id
    pet_ref = pet_id if pet_id is not None else pet_name
    if pet_ref is not None:
        item["pet"] = pet_ref
    item["scheduled"] = b.scheduled.astimezone(tz).isoformat()
    item["booked_min"] = b.duration_min  # filled from the type below when None
    return _Row(b, "appointments", item, puts, no_text, client_id)


@dataclass(slots=True)
class _Merged:
    entities: dict[str, _Entities]
    items: dict[tuple[str, str], _Row]  # (kind, id) -> the row that gave it
    rows: list[_Row]
    conflicts: list[tuple[_Row, ScheduleFileError]]


def _merge(rows: list[_Row]) -> _Merged:
    """Rows merged in file order; a row that disagrees with an earlier one is left out whole."""
    entities = {kind: _Entities() for kind in ("vets", "types", "clients", "pets")}
    items: dict[tuple[str, str], _Row] = {}
    kept: list[_Row] = []
    conflicts: list[tuple[_Row, ScheduleFileError]] = []
    for row in rows:
        b = row.booking
        problem = next((e for kind, key, fields in row.puts
                        if (e := entities[kind].conflict(key, b, fields)) is not None), None)  # fmt: skip
        key = (row.kind, row.item["id"])
        earlier = items.get(key)
        if problem is None and earlier is not None and earlier.item != row.item:
            problem = _fail(
                b, "appointment_id", f"{row.item['id']!r} is also at {earlier.booking.where}, with other details"
            )
        if problem is not None:
            conflicts.append((row, problem))
            continue
        for kind, key_, fields in row.puts:
            entities[kind].put(key_, b, fields)
        if earlier is None:
            items[key] = row
        kept.append(row)
    return _Merged(entities, items, kept, conflicts)


def _ref(row: _Row, kind: str) -> str | None:
    return next((key for k, key, _ in row.puts if k == kind), None)


def _assemble(
    bookings: Sequence[_Booking],
    tz: tzinfo,
    region: str | None,
    problems: Sequence[tuple[int, ScheduleFileError]] = (),
    notes: Sequence[Note] = (),
) -> ParsedSchedule:
    """The document of every good booking, and a problem for each one left out (with
    `problems`: those found reading the file, by position)."""
    found = list(problems)
    rows: list[_Row] = []
    for b in bookings:
        try:
            rows.append(_prepare(b, tz, region))
        except ScheduleFileError as e:
            found.append((b.order, e))
    # A record some rows leave incomplete (a type with no length, a client with no name)
    # costs every row that needs it; leaving those out can leave another record incomplete.
    while True:
        merged = _merge(rows)
        types = merged.entities["types"]
        durations: dict[str, Counter[float]] = {}
        for row in merged.rows:
            type_id = row.item.get("type")
            if type_id is not None and row.booking.duration_min is not None:
                durations.setdefault(type_id, Counter())[row.booking.duration_min] += 1
        bad: dict[int, ScheduleFileError] = {}
        for row in merged.rows:
            b = row.booking
            type_id, client_id, pet_id = _ref(row, "types"), _ref(row, "clients"), _ref(row, "pets")
            if type_id is not None and types.records[type_id].get("booked_min") is None and not durations.get(type_id):
                bad[id(row)] = _fail(b, "duration", f"needed: type {type_id!r} has no booked length in the file")
            elif client_id is not None and merged.entities["clients"].records[client_id].get("name") is None:
                bad[id(row)] = _fail(b, "client_name", f"missing for client {client_id!r}")
            elif pet_id is not None and merged.entities["pets"].records[pet_id].get("name") is None:
                bad[id(row)] = _fail(b, "pet_name", f"missing for pet {pet_id!r}")
        if not bad:
            break
        found.extend((row.booking.order, bad[id(row)]) for row in merged.rows if id(row) in bad)
        rows = [row for row in rows if id(row) not in bad]
    found.extend((row.booking.order, e) for row, e in merged.conflicts)
    found.sort(key=lambda p: p[0])

    records = {kind: e.records for kind, e in merged.entities.items()}
    type_booked: dict[str, float] = {}
    type_list = []
    for type_id, record in records["types"].items():
        booked = record.get("booked_min")
        if booked is None:
            counts = durations[type_id]
            # The commonest length; on a tie the shorter, so that the choice is stable.
            booked = min(counts, key=lambda d: (-counts[d], d))
        assert isinstance(booked, float)
        type_booked[type_id] = booked
        type_list.append({"id": type_id, "name": record.get("name") or type_id, "booked_min": _number_out(booked)})

    client_list = [{
        "id": client_id,
        "name": record["name"],
        "mobile": record.get("mobile"),
        "sms_consent": record.get("sms_consent", False),
        "language": record.get("language", "en"),
        "notes": record.get("notes", ""),
    } for client_id, record in records["clients"].items()]  # fmt: skip
    pet_list = [{
        "id": pet_id,
        "client": record.get("client"),
        "name": record["name"],
        "species": record.get("species"),
        "sex": record.get("sex", "unknown"),
    } for pet_id, record in records["pets"].items()]  # fmt: skip

    appointment_list, block_list = [], []
    no_texts: dict[str, Note] = {}
    for (kind, _), row in merged.items.items():
        item = dict(row.item)
        if kind == "blocks":
            block_list.append(item)
            continue
        minutes = item["booked_min"]
        if minutes is None:
            minutes = type_booked[item["type"]]
        item["booked_min"] = _number_out(minutes)
        appointment_list.append(item)
    for row in merged.rows:
        if row.no_text is not None and row.client is not None:
            no_texts.setdefault(row.client, row.no_text)

    doc: dict[str, Any] = {
        "vets": [{"id": k, "name": r.get("name") or k} for k, r in records["vets"].items()],
        "appointment_types": type_list,
        "clients": client_list,
        "pets": pet_list,
        "appointments": appointment_list,
    }
    if block_list:
        doc["blocks"] = block_list
    return ParsedSchedule(doc, [e for _, e in found], list(notes), list(no_texts.values()))


# --- CSV -------------------------------------------------------------------------------

_CSV_COLUMNS = ("start", "duration_min", *_TEXT_FIELDS)
_CSV_REQUIRED = ("appointment_id", "start", "vet_id")
_ISO_TIME = re.compile(r"^\d{4}-?\d{2}-?\d{2}[Tt ]\d")
# Excel's dates: 11/27/2026, 27/11/2026, 27.11.2026, 27-11-2026, 2026/11/27; then the time.
_NUMERIC_DATE = re.compile(r"^(\d{1,4})([/.\-])(\d{1,2})\2(\d{1,4})(?:(?:\s+|T|,\s*)(.*))?$")
_CLOCK = re.compile(r"^(\d{1,2})[:.](\d{2})(?:[:.](\d{2})(?:[.,]\d+)?)?\s*(?:([AaPp])\.?\s*[Mm]\.?)?$")


_CSV_ALIASES = {"duration": "duration_min", "duration_minutes": "duration_min", "minutes": "duration_min"}


def _column_key(header: str) -> str:
    key = re.sub(r"[^0-9a-z]+", "_", header.strip().casefold()).strip("_")
    return _CSV_ALIASES.get(key, key)


def _delimiter(text: str) -> str:
    # Spreadsheets in locales with a decimal comma save ";"-separated "CSV".
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


@dataclass(frozen=True, slots=True)
class _Order:
    value: str | None  # "dmy", "mdy", "ymd"; None: the file has no date that needs one
    source: str  # how it was decided, for messages


def _day_month(raw: str) -> tuple[int, int] | None:
    """The first two numbers of a date written "NN/NN/YYYY", else None."""
    m = _NUMERIC_DATE.match(raw)
    if m is None or len(m.group(1)) > 2 or len(m.group(4)) != 4:
        return None
    return int(m.group(1)), int(m.group(3))


def _date_order(cells: Sequence[tuple[str, str]], label: str, opts: ImportOptions) -> _Order:
    """Day first or month first, for the "NN/NN/YYYY" dates of `cells` ((where, text) pairs)."""
    if opts.date_order is not None:
        return _Order(opts.date_order, opts.date_order_source)
    day_first = month_first = ambiguous = None
    for where, raw in cells:
        pair = _day_month(raw)
        if pair is None:
            continue
        a, b = pair
        if a > 12 >= b:
            day_first = day_first or (where, raw)
        elif b > 12 >= a:
            month_first = month_first or (where, raw)
        elif a != b:
            ambiguous = ambiguous or (where, raw)
    if day_first and month_first:
        raise ScheduleFileError(
            f"the file mixes day-first dates ({day_first[0]}: {day_first[1][:20]!r}) and month-first dates "
            f"({month_first[0]}: {month_first[1][:20]!r}); this happens when Excel converts only some cells: "
            f"format the {label} column as yyyy-mm-dd hh:mm in Excel and save again",
            field=label,
        )
    proof = day_first or month_first
    if proof:
        return _Order("dmy" if day_first else "mdy", f"{proof[0]}: {proof[1][:20]!r}")
    if ambiguous is None:
        return _Order(None, "")
    by_region = region_date_order(opts.region)
    if by_region is not None:
        return _Order(by_region, f"the clinic's region {opts.region}")
    raise ScheduleFileError(
        f"dates such as {ambiguous[1][:20]!r} ({ambiguous[0]}) could be day/month or month/day: set the clinic's "
        "date order (waitroom clinic --date-order dmy or mdy) or import with --date-order dmy or mdy",
        field=label,
    )


def _clock(raw: str) -> time | None:
    m = _CLOCK.match(raw.strip())
    if m is None:
        return None
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if m.group(4):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if m.group(4) in "Pp" else 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return time(hour, minute, second)


def _parse_start(raw: str, tz: tzinfo, where: str, label: str, order: _Order) -> datetime:
    def bad(why: str) -> ScheduleFileError:
        return ScheduleFileError(f"not a date/time {raw[:40]!r} ({why})", where=where, field=label)

    if _ISO_TIME.match(raw):
        try:
            t = datetime.fromisoformat(raw)
        except ValueError as e:
            raise bad("expected YYYY-MM-DD HH:MM") from e
    else:
        m = _NUMERIC_DATE.match(raw)
        if m is None:
            raise bad("expected YYYY-MM-DD HH:MM, or a date and time as Excel writes them")
        first, second, last, rest = m.group(1), int(m.group(3)), m.group(4), m.group(5)
        if len(first) == 4 and len(last) <= 2:
            year, month, day = int(first), second, int(last)
        elif len(first) <= 2 and len(last) == 4:
            if order.value == "ymd":
                raise bad(f"expected year/month/day, from {order.source}")
            year = int(last)
            day, month = (int(first), second) if order.value in ("dmy", None) else (second, int(first))
        else:
            raise bad("write the year with four digits")
        if not rest:
            raise bad("a date without a time of day")
        clock = _clock(rest)
        if clock is None:
            raise bad(f"{rest.strip()[:20]!r} is not a time of day such as 14:30 or 2:30 PM")
        try:
            t = datetime.combine(date(year, month, day), clock)
        except ValueError as e:
            if order.value in ("dmy", "mdy") and len(first) <= 2:
                raise bad(f"no such date read as {_ORDER_WORDS[order.value]}, from {order.source}") from e
            raise bad("no such date") from e
    _check_year(t, where, label)
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


def read_csv(text: str, *, default_tz: tzinfo, options: ImportOptions = ImportOptions()) -> ParsedSchedule:
    """Every good row of a CSV export (one row per appointment; see the module doc)."""
    text = text.removeprefix("\ufeff")
    columns: dict[str, int] | None = None
    labels: dict[str, str] = {}
    width = 0
    data: list[tuple[int, list[str]]] = []
    for number, row in _csv_rows(text):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if columns is not None:
            data.append((number, cells))
            continue
        where = f"row {number}"
        columns = {}
        for i, cell in enumerate(cells):
            header = cell.removeprefix("\ufeff").strip()
            key = _column_key(header)
            if key not in _CSV_COLUMNS:
                continue
            if key in columns:
                raise ScheduleFileError(f"column {key!r} appears twice", where=where, field="header")
            columns[key] = i
            labels[key] = header[:40]
        for key in _CSV_REQUIRED:
            if key not in columns:
                raise ScheduleFileError(f"missing column {key!r}", where=where, field="header")
        width = len(cells)
    if columns is None:
        raise ScheduleFileError("no header row: the file is empty")
    labels = {**{name: name for name in _CSV_COLUMNS}, **labels}
    labels["duration"] = labels["duration_min"]
    start_at = columns["start"]
    order = _date_order(
        [(f"row {n}", cells[start_at]) for n, cells in data if start_at < len(cells)], labels["start"], options
    )
    bookings: list[_Booking] = []
    problems: list[tuple[int, ScheduleFileError]] = []
    for number, cells in data:
        where = f"row {number}"
        try:
            if any(cells[width:]):
                raise ScheduleFileError(f"{len(cells)} fields, but the header has {width} columns", where=where)
            values = {key: cells[i] for key, i in columns.items() if i < len(cells) and cells[i]}
            start = values.pop("start", None)
            if start is None:
                raise ScheduleFileError("missing", where=where, field=labels["start"])
            scheduled = _parse_start(start, default_tz, where, labels["start"], order)
            duration_raw = values.pop("duration_min", None)
            duration = None
            if duration_raw is not None:
                duration = _minutes_text(duration_raw)
                if duration is None:
                    raise ScheduleFileError(
                        f"expected minutes between 1 and {MAX_MINUTES}, got {duration_raw[:40]!r}",
                        where=where,
                        field=labels["duration_min"],
                    )
            bookings.append(_Booking(number, where, labels, values, scheduled, duration))
        except ScheduleFileError as e:
            problems.append((number, e))
    return _assemble(bookings, default_tz, options.region, problems)


def parse_csv(text: str, *, default_tz: tzinfo, options: ImportOptions = ImportOptions()) -> dict[str, Any]:
    """The schedule document of a CSV export, all or nothing: the first bad row raises."""
    return read_csv(text, default_tz=default_tz, options=options).strict()


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

    def all_day(self) -> bool:
        """DTSTART is a date without a time of day."""
        prop = self.one("DTSTART")
        value = getattr(prop, "dt", None) if isinstance(prop, icalendar.vDDDTypes) else None
        return isinstance(value, date) and not isinstance(value, datetime)

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


# What makes an event an appointment rather than the vet's blocked time.
_APPOINTMENT_FIELDS = ("client_id", "client_name", "mobile", "pet_id", "pet_name", "type_id", "type_name")


def _ics_booking(ev: _Event, order: int, opts: ImportOptions, occurrence: str | None = None) -> _Booking | Note | None:
    """One event (or one occurrence of a repeating one): a booking, a note saying why it is
    not imported, or None (cancelled). Raises ScheduleFileError for a bad event."""
    status = ev.text("STATUS")
    if status is not None and status.upper() == "CANCELLED":
        return None
    summary = ev.text("SUMMARY")
    called = f"{summary[:40]!r}: " if summary else ""
    if ev.all_day():
        return Note(
            ev.where,
            "DTSTART",
            f"{called}an all-day event is not an appointment: not imported "
            "(if the vet is away, mark them away in the console)",
        )
    transp = ev.text("TRANSP")
    if transp is not None and transp.upper() == "TRANSPARENT":
        return Note(ev.where, "TRANSP", f"{called}marked free (show as available): not imported")
    labels = dict(_ICS_LABELS)
    values: dict[str, str] = {}
    uid = ev.text("UID")
    if uid is None:
        raise ev.fail("UID", "missing")
    if occurrence is not None:
        uid = f"{uid}@{occurrence}"
        if len(uid) > MAX_TEXT:  # still unique, still the same on a re-import
            uid = f"{uid[:80]}~{hashlib.sha256(uid.encode()).hexdigest()[:32]}@{occurrence}"
    values["appointment_id"] = uid
    for key, prop in _ICS_X.items():
        text = ev.text(prop)
        if text is not None:
            values[key] = text

    if "vet_id" not in values and opts.vet is not None:
        values["vet_id"], values["vet_name"] = opts.vet
        labels["vet_id"] = labels["vet_name"] = "--vet"
    elif values.get("vet_id") is not None and opts.vet is not None and values["vet_id"] == opts.vet[0]:
        values.setdefault("vet_name", opts.vet[1])
    if "vet_id" not in values or "vet_name" not in values:
        label, address, cn = _vet_contact(ev)
        if "vet_name" not in values and cn is not None:
            values["vet_name"], labels["vet_name"] = cn, f"{label} CN"
        if "vet_id" not in values:
            fallback = address or values.get("vet_name")
            if fallback is None:
                raise ev.fail(
                    "X-WAITROOM-VET",
                    "missing: name the vet with --vet ID (a calendar that is one vet's), "
                    "or give an ORGANIZER or ATTENDEE",
                )
            values["vet_id"], labels["vet_id"] = fallback, label if address else labels["vet_name"]

    # A private event's title is no one else's business, and no appointment of the clinic's.
    private = (ev.text("CLASS") or "").upper() in ("PRIVATE", "CONFIDENTIAL")
    match = _SUMMARY.match(summary) if summary is not None and not private else None
    if match is not None:
        pet, type_name = match.group("pet").strip(), match.group("type").strip()
        if "pet_name" not in values and pet:
            values["pet_name"], labels["pet_name"] = pet, "SUMMARY"
        if "type_name" not in values and type_name:
            values["type_name"], labels["type_name"] = type_name, "SUMMARY"
    block = not any(name in values for name in _APPOINTMENT_FIELDS)
    if block:
        if summary and not private:
            values["reason"], labels["reason"] = summary, "SUMMARY"

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
    return _Booking(order, ev.where, labels, values, start, minutes, block)


def _repeats(event: icalendar.Component) -> bool:
    return any(event.get(name) is not None for name in ("RRULE", "RDATE", "RECURRENCE-ID"))


def _local_day(ev: _Event) -> date | None:
    """The clinic-local date an event starts on; None when it cannot be read (the event's own
    problem, reported when it is read in full)."""
    try:
        if ev.all_day():
            value = getattr(ev.one("DTSTART"), "dt", None)
            return value if isinstance(value, date) else None
        start = ev.time("DTSTART")
    except ScheduleFileError:
        return None
    return start.astimezone(ev.tz).date() if start is not None else None


def _occurrences(
    calendar: icalendar.Component, day: date, tz: tzinfo
) -> Iterator[tuple[icalendar.Component, datetime | date]]:
    """The occurrences of the repeating events of `calendar` that start on `day`, clinic time."""
    # From the day before: an occurrence in another zone may start on `day` here.
    for occurrence in recurring_ical_events.of(calendar).after(datetime.combine(day - timedelta(days=1), time())):
        start = occurrence.get("DTSTART")
        value = getattr(start, "dt", None)
        if isinstance(value, datetime):
            local = (value if value.tzinfo is not None else value.replace(tzinfo=tz)).astimezone(tz).date()
        elif isinstance(value, date):
            local = value
        else:
            return
        if local > day:
            return
        if local == day:
            yield occurrence, value


def read_ics(text: str, *, default_tz: tzinfo, options: ImportOptions = ImportOptions()) -> ParsedSchedule:
    """Every good event of an iCalendar export (see the module doc)."""
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
    tz = default_tz
    bookings: list[_Booking] = []
    problems: list[tuple[int, ScheduleFileError]] = []
    notes: list[Note] = []

    def take(result: _Booking | Note | None) -> None:
        if isinstance(result, Note):
            notes.append(result)
        elif result is not None:
            bookings.append(result)

    one_off: list[tuple[int, _Event]] = []
    series: dict[str, list[tuple[int, _Event]]] = {}
    for i, event in enumerate(events):
        where = f"line {begins[i]}" if len(begins) == len(events) else f"event {i + 1}"
        ev = _Event(event, where, tz)
        if not _repeats(event):
            one_off.append((i, ev))
            continue
        try:
            uid = ev.text("UID")
            if uid is None:
                raise ev.fail("UID", "missing")
        except ScheduleFileError as e:
            problems.append((i, e))
            continue
        series.setdefault(uid, []).append((i, ev))

    elsewhere = 0
    for i, ev in one_off:
        if options.day is not None and _local_day(ev) not in (options.day, None):
            elsewhere += 1
            continue
        try:
            take(_ics_booking(ev, i, options))
        except ScheduleFileError as e:
            problems.append((i, e))
    if elsewhere:
        notes.append(
            Note(
                None,
                None,
                f"{elsewhere} event{'s' if elsewhere != 1 else ''} on other days than {options.day}: not imported",
            )
        )

    if series:
        if options.day is not None:
            days = [options.day]
        else:
            days = sorted({d for _, ev in one_off if (d := _local_day(ev)) is not None})
            if not days and options.today is not None:
                days = [options.today]
            if len(days) > MAX_DAYS:
                raise ScheduleFileError(
                    f"the calendar has events on {len(days)} days and repeating events: import one day at a time "
                    "with --day YYYY-MM-DD"
                )
        if not days:
            raise ScheduleFileError("the calendar has only repeating events: say which day to import (--day)")
        zones = [c for top in components for c in top.walk("VTIMEZONE")]
        x_wr = components[0].get("X-WR-TIMEZONE")
        for group in series.values():
            first, master = group[0]
            calendar = icalendar.Calendar()
            if x_wr is not None:
                calendar.add("X-WR-TIMEZONE", x_wr)
            for zone in zones:
                calendar.add_component(zone)
            for _, ev in group:
                calendar.add_component(ev.event)
            try:
                for day in days:
                    count = 0
                    for occurrence, start in _occurrences(calendar, day, tz):
                        count += 1
                        if count > MAX_OCCURRENCES:
                            raise master.fail("RRULE", f"repeats more than {MAX_OCCURRENCES} times on {day}")
                        if isinstance(start, datetime):
                            aware = start if start.tzinfo is not None else start.replace(tzinfo=tz)
                            stamp = aware.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
                        else:
                            stamp = start.strftime("%Y%m%d")
                        take(_ics_booking(_Event(occurrence, master.where, tz), first, options, stamp))
            except ScheduleFileError as e:
                problems.append((first, e))
            except Exception as e:  # the library's own errors on a rule it cannot expand
                problems.append((first, master.fail("RRULE", f"cannot be expanded ({str(e)[:80]})")))
    return _assemble(bookings, tz, options.region, problems, notes)


def parse_ics(text: str, *, default_tz: tzinfo, options: ImportOptions = ImportOptions()) -> dict[str, Any]:
    """The schedule document of an iCalendar export, all or nothing: the first bad event raises."""
    return read_ics(text, default_tz=default_tz, options=options).strict()


# --- files -----------------------------------------------------------------------------

_CSV_SUFFIXES = (".csv", ".txt", ".tsv")  # Excel's "Unicode Text" is a tab-separated .txt


def _decode(data: bytes, name: str) -> str:
    """UTF-8, UTF-16 with a byte-order mark, or (failing UTF-8) Windows-1252."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise ScheduleFileError(f"{name}: not UTF-16 text after its byte-order mark (byte {e.start})") from e
    if b"\x00" in data[:4096]:
        raise ScheduleFileError(f"{name}: looks like UTF-16 without a byte-order mark; save it as UTF-8 or CSV")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        utf8_error = e
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as e:
        raise ScheduleFileError(
            f"{name}: neither UTF-8 (byte {utf8_error.start}) nor Windows-1252 text; save the file as CSV UTF-8"
        ) from e


def read_schedule_file(path: Path, *, default_tz: tzinfo, options: ImportOptions = ImportOptions()) -> ParsedSchedule:
    """Read an export and parse it by its suffix: .csv (.txt, .tsv), .ics, or .json (passed through)."""
    suffix = path.suffix.lower()
    if suffix not in (*_CSV_SUFFIXES, ".ics", ".json"):
        raise ScheduleFileError(f"{path.name}: expected a .csv, .ics or .json file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ScheduleFileError(f"{path}: cannot read ({e.strerror or e})") from e
    if suffix == ".json":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise ScheduleFileError(f"{path.name}: not UTF-8 text (byte {e.start}); JSON must be UTF-8") from e
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise ScheduleFileError(f"not JSON ({e.msg})", where=f"line {e.lineno}") from e
        except RecursionError as e:
            raise ScheduleFileError("not JSON (nested too deeply)") from e
        if not isinstance(doc, dict):
            raise ScheduleFileError("expected a JSON object with vets, appointment_types, ... lists")
        return ParsedSchedule(doc)
    text = _decode(data, path.name)
    if suffix == ".ics":
        return read_ics(text, default_tz=default_tz, options=options)
    return read_csv(text, default_tz=default_tz, options=options)


def parse_schedule_file(path: Path, *, default_tz: tzinfo, options: ImportOptions = ImportOptions()) -> dict[str, Any]:
    """`read_schedule_file`, all or nothing: the first bad row raises."""
    return read_schedule_file(path, default_tz=default_tz, options=options).strict()
