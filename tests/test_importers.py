"""Schedule importers: CSV and iCalendar exports become the `POST /api/schedule` document."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.estimator import estimate
from server.importers import (
    ImportOptions,
    ScheduleFileError,
    parse_csv,
    parse_ics,
    parse_schedule_file,
    read_csv,
    read_ics,
    read_schedule_file,
)
from server.schedule import import_schedule
from server.store import open_store
from tests import dbq
from tests.conftest import Api

TZ = ZoneInfo("America/Chicago")
DATA = Path(__file__).parent / "data"

EXPECTED: dict[str, Any] = {
    "vets": [{"id": "v1", "name": "Dr. Ana Ruiz"}, {"id": "v2", "name": "Dr. Ben Okafor"}],
    "appointment_types": [
        {"id": "vacc", "name": "Vaccination", "booked_min": 15},
        {"id": "dental", "name": "Dental check", "booked_min": 30},
        # not given: the commonest length in the file, the shorter on a tie (20 and 25)
        {"id": "consult", "name": "Consultation", "booked_min": 20},
    ],
    "clients": [
        {
            "id": "c1",
            "name": "Maria Lopez",
            "mobile": "(312) 555-0142",
            "sms_consent": True,
            "language": "es",
            "notes": "",
        },
        {
            "id": "c2",
            "name": "John Smith",
            "mobile": "+1 312 555 0199",
            "sms_consent": False,
            "language": "en",
            "notes": "Nervous dog, use side door",
        },
    ],
    "pets": [
        {"id": "p1", "client": "c1", "name": "Bella", "species": "dog", "sex": "female"},
        {"id": "p2", "client": "c1", "name": "Max", "species": "cat", "sex": "male"},
        {"id": "p3", "client": "c2", "name": "Rex", "species": "dog", "sex": "male"},
        {"id": "c2/Luna", "client": "c2", "name": "Luna", "species": "cat", "sex": "female"},
    ],
    "appointments": [
        {
            "id": "a1",
            "vet": "v1",
            "type": "vacc",
            "pet": "p1",
            "scheduled": "2024-05-01T09:00:00-05:00",
            "booked_min": 15,
        },
        {
            "id": "a2",
            "vet": "v1",
            "type": "dental",
            "pet": "p2",
            "scheduled": "2024-05-01T09:15:00-05:00",
            "booked_min": 30,
        },
        {
            "id": "a3",
            "vet": "v2",
            "type": "consult",
            "pet": "p3",
            "scheduled": "2024-05-01T09:00:00-05:00",
            "booked_min": 20,
        },
        {
            "id": "a4",
            "vet": "v2",
            "type": "vacc",
            "pet": "p3",
            "scheduled": "2024-05-01T09:30:00-05:00",
            "booked_min": 15,
        },
        {
            "id": "a5",
            "vet": "v1",
            "type": "consult",
            "pet": "c2/Luna",
            "scheduled": "2024-05-01T10:00:00-05:00",
            "booked_min": 25,
        },
    ],
}

HEADER = "appointment_id,start,duration_min,vet_id,vet_name,type_id,type_name,pet_id,pet_name,client_id,client_name"
GOOD_ROW = "a1,2024-05-01 09:00,15,v1,Dr A,vacc,Vaccination,p1,Bella,c1,Maria"


def csv_of(*rows: str, header: str = HEADER) -> str:
    return "\n".join((header, *rows)) + "\n"


def ics_of(*event_lines: str) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", *event_lines]
    return "\r\n".join([*lines, "END:VEVENT", "END:VCALENDAR"]) + "\r\n"


GOOD_EVENT = ("UID:a1", "DTSTART:20240501T090000", "DURATION:PT15M", "X-WAITROOM-VET:v1", "X-WAITROOM-PET-NAME:Bella")


def assert_consistent(doc: dict[str, Any]) -> None:
    """What the store needs of a document: every reference resolves, every id is listed once."""
    for key in ("vets", "appointment_types", "clients", "pets", "appointments"):
        ids = [item["id"] for item in doc[key]]
        assert len(ids) == len(set(ids)), key
    vets = {v["id"] for v in doc["vets"]}
    types = {t["id"]: t for t in doc["appointment_types"]}
    clients = {c["id"] for c in doc["clients"]}
    for t in types.values():
        assert 0 < t["booked_min"] <= 1440
    for p in doc["pets"]:
        assert p["client"] is None or p["client"] in clients
        assert p["sex"] in ("female", "male", "unknown")
    for a in doc["appointments"]:
        assert a["vet"] in vets
        assert "type" not in a or a["type"] in types
        assert 0 < a["booked_min"] <= 1440
        assert a["scheduled"][-6] in "+-"  # always with an offset


# --- good files ------------------------------------------------------------------------


def test_csv_export_becomes_the_schedule_document() -> None:
    doc = parse_schedule_file(DATA / "day.csv", default_tz=TZ)
    assert doc == EXPECTED


def test_ics_export_of_the_same_day_gives_the_same_document() -> None:
    # day.ics leans on the fallbacks (SUMMARY for pet and type names, details given once
    # per client, UTC and TZID times, a cancelled event) and must still agree with the CSV.
    doc = parse_schedule_file(DATA / "day.ics", default_tz=TZ)
    assert doc == EXPECTED


def test_reimport_gives_the_same_document_and_ids() -> None:
    for name in ("day.csv", "day.ics"):
        first = parse_schedule_file(DATA / name, default_tz=TZ)
        second = parse_schedule_file(DATA / name, default_tz=TZ)
        assert json.dumps(first) == json.dumps(second)


def test_json_file_is_passed_through(tmp_path: Path) -> None:
    path = tmp_path / "day.JSON"
    path.write_text(json.dumps(EXPECTED))
    assert parse_schedule_file(path, default_tz=TZ) == EXPECTED


async def test_store_accepts_the_document_and_a_reimport_changes_nothing(clinic_db: str) -> None:
    doc = parse_schedule_file(DATA / "day.csv", default_tz=TZ)
    store = await open_store(clinic_db)
    try:
        for _ in range(2):
            async with store.transaction() as conn:
                counts = await import_schedule(conn, doc, TZ, "US")
            assert counts["appointments"] == 5
        rows = await dbq.rows(clinic_db, "SELECT id, vet_id, type_id, pet_id, booked_min FROM appointments ORDER BY id")
        assert rows == [
            ("a1", "v1", "vacc", "p1", 15.0),
            ("a2", "v1", "dental", "p2", 30.0),
            ("a3", "v2", "consult", "p3", 20.0),
            ("a4", "v2", "vacc", "p3", 15.0),
            ("a5", "v1", "consult", "c2/Luna", 25.0),
        ]
    finally:
        await store.close()


def test_csv_tolerates_semicolons_column_case_and_exact_duplicate_rows() -> None:
    row = "v1;2024-05-01 09:00;a1;10\r\n"
    text = "\ufeff VET_ID ; Start;Appointment-ID;Duration Min\r\n" + row + row
    doc = parse_csv(text, default_tz=TZ)
    assert doc["vets"] == [{"id": "v1", "name": "v1"}]
    assert doc["appointments"] == [
        {"id": "a1", "vet": "v1", "scheduled": "2024-05-01T09:00:00-05:00", "booked_min": 10}
    ]


def test_csv_header_only_is_an_empty_day() -> None:
    assert parse_csv(HEADER + "\n", default_tz=TZ)["appointments"] == []


def test_csv_type_id_defaults_to_a_slug_and_bare_pet_name_is_kept() -> None:
    text = (
        "appointment_id,start,vet_id,type_name,duration_min,pet_name\na1,2024-05-01 09:00,v1,Dental Check!,30,Bella\n"
    )
    doc = parse_csv(text, default_tz=TZ)
    assert doc["appointment_types"] == [{"id": "dental-check", "name": "Dental Check!", "booked_min": 30}]
    assert doc["pets"] == []  # no pet id and no client: the store keeps the bare name
    assert doc["appointments"][0]["pet"] == "Bella"


def test_ics_falls_back_to_organizer_and_summary() -> None:
    text = ics_of(
        "UID:x1",
        "DTSTART;TZID=America/Chicago:20240501T090000",
        "DTEND;TZID=America/Chicago:20240501T091500",
        "SUMMARY:Bella (Vaccination)",
        "ORGANIZER;CN=Dr. Ana Ruiz:mailto:Ana@Clinic.example",
        "ATTENDEE;CN=Maria Lopez:mailto:maria@example.com",
    )
    doc = parse_ics(text, default_tz=TZ)
    assert doc["vets"] == [{"id": "ana@clinic.example", "name": "Dr. Ana Ruiz"}]
    assert doc["appointment_types"] == [{"id": "vaccination", "name": "Vaccination", "booked_min": 15}]
    assert doc["appointments"] == [
        {
            "id": "x1",
            "vet": "ana@clinic.example",
            "type": "vaccination",
            "pet": "Bella",
            "scheduled": "2024-05-01T09:00:00-05:00",
            "booked_min": 15,
        }
    ]


def test_ics_attendee_chair_names_the_vet_when_there_is_no_organizer() -> None:
    text = ics_of(
        "UID:x1",
        "DTSTART:20240501T090000",
        "DURATION:PT10M",
        "ATTENDEE;CN=Maria Lopez:mailto:maria@example.com",
        "ATTENDEE;ROLE=CHAIR;CN=Dr. Ben:mailto:ben@clinic.example",
    )
    assert parse_ics(text, default_tz=TZ)["vets"] == [{"id": "ben@clinic.example", "name": "Dr. Ben"}]


def test_ics_with_no_events_is_an_empty_day() -> None:
    text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
    assert parse_ics(text, default_tz=TZ)["appointments"] == []


# --- bad files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            csv_of(GOOD_ROW, "a2,32/13,15,v1,Dr A,vacc,Vaccination,p1,Bella,c1,Maria"),
            "row 3: start: not a date/time '32/13'",
        ),
        (csv_of("a1,2024-05-01,15,v1,,,,,,,"), "row 2: start: not a date/time '2024-05-01'"),
        (csv_of("a1,1024-05-01 09:00,15,v1,,,,,,,"), "row 2: start: year 1024 is out of range"),
        (csv_of("a1,,15,v1,,,,,,,"), "row 2: start: missing"),
        (csv_of("a1,2024-05-01 09:00,abc,v1,,,,,,,"), "row 2: duration_min: expected minutes"),
        (csv_of("a1,2024-05-01 09:00,0,v1,,,,,,,"), "row 2: duration_min: expected minutes"),
        (csv_of("a1,2024-05-01 09:00,15,,,,,,,,"), "row 2: vet_id: missing"),
        (csv_of(",2024-05-01 09:00,15,v1,,,,,,,"), "row 2: appointment_id: missing"),
        (
            csv_of(GOOD_ROW, "a2,2024-05-01 09:30,15,v1,Dr B,vacc,Vaccination,p1,Bella,c1,Maria"),
            "row 3: vet_name: 'Dr B' differs from 'Dr A' given for 'v1' at row 2",
        ),
        (
            csv_of(GOOD_ROW, "a1,2024-05-01 09:30,15,v1,Dr A,vacc,Vaccination,p1,Bella,c1,Maria"),
            "row 3: appointment_id: 'a1' is also at row 2, with other details",
        ),
        (csv_of("a1,2024-05-01 09:00,,v1,Dr A,vacc,Vaccination,p1,Bella,c1,Maria"), "row 2: duration_min: needed"),
        (csv_of("a1,2024-05-01 09:00,,v1,,,,,,,"), "row 2: duration_min: needed when the appointment has no type"),
        (csv_of("a1,2024-05-01 09:00,15,v1,,,,p1,,c1,Maria"), "row 2: pet_name: missing for pet 'p1'"),
        (csv_of("a1,2024-05-01 09:00,15,v1,,,,p1,Bella,c1,"), "row 2: client_name: missing for client 'c1'"),
        (csv_of("a1,2024-05-01 09:00,15,v1,,,,,,,Maria"), "row 2: client_id: missing, but client_name is given"),
        (csv_of(GOOD_ROW + ",surplus"), "row 2: 12 fields, but the header has 11 columns"),
        (
            csv_of("a1,2024-05-01 09:00,15,v1", header="appointment_id,begin,duration_min,vet_id"),
            "row 1: header: missing column 'start'",
        ),
        (csv_of("a1,x,y", header="appointment_id,start,Start"), "row 1: header: column 'start' appears twice"),
        ("", "no header row"),
        ("\r\n\r\n", "no header row"),
    ],
)
def test_bad_csv_names_the_row_and_field(text: str, message: str) -> None:
    with pytest.raises(ScheduleFileError) as info:
        parse_csv(text, default_tz=TZ)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("column", "value"),
    [("sex", "X"), ("sms_consent", "maybe"), ("language", "fr"), ("type_booked_min", "-5"), ("vet_name", "x" * 201)],
)
def test_bad_csv_values_name_their_column(column: str, value: str) -> None:
    text = f"appointment_id,start,vet_id,type_id,duration_min,client_id,client_name,pet_id,pet_name,{column}\n"
    text += f"a1,2024-05-01 09:00,v1,t1,15,c1,Maria,p1,Bella,{value}\n"
    with pytest.raises(ScheduleFileError) as info:
        parse_csv(text, default_tz=TZ)
    assert str(info.value).startswith(f"row 2: {column}: ")
    assert info.value.where == "row 2" and info.value.field == column


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"DTSTART:20240501T090000": "DTSTART:tomorrow"}, "line 4: DTSTART: unreadable"),
        (
            {"DTSTART:20240501T090000": "DTSTART;TZID=Mars/Olympus:20240501T090000"},
            "line 4: DTSTART: unknown time zone",
        ),
        ({"DTSTART:20240501T090000": ""}, "line 4: DTSTART: missing"),
        ({"UID:a1": ""}, "line 4: UID: missing"),
        ({"UID:a1": "UID:a1\r\nUID:a2"}, "line 4: UID: given more than once"),
        ({"DURATION:PT15M": "DTEND:20240501T085000"}, "line 4: DTEND: the event lasts -10 minutes"),
        ({"DURATION:PT15M": "DURATION:P2D"}, "line 4: DURATION: the event lasts 2880 minutes"),
        ({"DURATION:PT15M": ""}, "line 4: DTEND or DURATION: needed when the appointment has no type"),
        ({"X-WAITROOM-VET:v1": ""}, "line 4: X-WAITROOM-VET: missing"),
        ({"X-WAITROOM-VET:v1": "X-WAITROOM-VET:v1\r\nRRULE:FREQ=DAILY"}, "the calendar has only repeating events"),
        (
            {"X-WAITROOM-VET:v1": "X-WAITROOM-VET:v1\r\nX-WAITROOM-SEX:hermaphrodite"},
            "line 4: X-WAITROOM-SEX: expected",
        ),
        (
            {"X-WAITROOM-VET:v1": "X-WAITROOM-VET:v1\r\nX-WAITROOM-CLIENT-NAME:Maria"},
            "line 4: X-WAITROOM-CLIENT: missing",
        ),
        ({"END:VEVENT\r\nEND:VCALENDAR\r\n": ""}, "not an iCalendar file: no complete BEGIN:VCALENDAR"),
        ({"END:VEVENT\r\n": ""}, "not an iCalendar file: no complete BEGIN:VCALENDAR"),
        ({"BEGIN:VCALENDAR": "hello"}, "not an iCalendar file"),
    ],
)
def test_bad_ics_names_the_line_and_property(replace: dict[str, str], message: str) -> None:
    text = ics_of(*GOOD_EVENT)
    for old, new in replace.items():
        assert old in text
        text = text.replace(old + ("" if old.endswith("\n") or new else "\r\n"), new)
    with pytest.raises(ScheduleFileError) as info:
        parse_ics(text, default_tz=TZ)
    assert str(info.value).startswith(message)


def test_ics_cut_short_after_a_complete_calendar_is_refused() -> None:
    text = ics_of(*GOOD_EVENT) + "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a2\r\n"
    with pytest.raises(ScheduleFileError, match="2 BEGIN:VEVENT lines but 1 complete events"):
        parse_ics(text, default_tz=TZ)


def test_ics_conflicts_name_the_later_event() -> None:
    first = ics_of(*GOOD_EVENT, "X-WAITROOM-VET-NAME:Dr A")
    second = first.replace("UID:a1", "UID:a2").replace("Dr A", "Dr B")
    text = first.replace("END:VCALENDAR\r\n", "") + second.split("PRODID:-//test//EN\r\n", 1)[1]
    with pytest.raises(ScheduleFileError, match=r"^line 12: X-WAITROOM-VET-NAME: 'Dr B' differs from 'Dr A'"):
        parse_ics(text, default_tz=TZ)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("day.xlsx", b"", "day.xlsx: expected a .csv, .ics or .json file"),
        ("day.csv", b"appointment_id,start,vet_id\n\x81\x8d", "day.csv: neither UTF-8 (byte 28) nor Windows-1252"),
        ("day.csv", b"a\x00p\x00p\x00", "day.csv: looks like UTF-16 without a byte-order mark"),
        ("day.json", b'{"vets": "\xe9"}', "day.json: not UTF-8 text (byte 10); JSON must be UTF-8"),
        ("day.json", b"[1, 2]", "expected a JSON object"),
        ("day.json", b"{\n  nope", "line 2: not JSON"),
    ],
)
def test_bad_files_raise_schedule_file_error(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ScheduleFileError) as info:
        parse_schedule_file(path, default_tz=TZ)
    assert str(info.value).startswith(message)


def test_missing_file_raises_schedule_file_error(tmp_path: Path) -> None:
    with pytest.raises(ScheduleFileError, match="cannot read"):
        parse_schedule_file(tmp_path / "nowhere.ics", default_tz=TZ)


# --- arbitrary input -------------------------------------------------------------------

QUICK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parses_or_refuses(parse: Any, text: str) -> None:
    try:
        doc = parse(text, default_tz=TZ)
    except ScheduleFileError as e:
        assert str(e)
    else:
        assert_consistent(doc)


@QUICK
@given(st.text())
def test_arbitrary_text_only_ever_raises_schedule_file_error(text: str) -> None:
    parses_or_refuses(parse_csv, text)
    parses_or_refuses(parse_ics, text)


COLUMNS = ("appointment_id", "start", "duration_min", "vet_id", "vet_name", "type_id", "type_name",
           "type_booked_min", "client_id", "client_name", "mobile", "sms_consent", "language",
           "pet_id", "pet_name", "species", "sex", "notes")  # fmt: skip
CELLS = st.one_of(
    st.sampled_from(["", " ", "a1", "a2", "v1", "x", "15", "0", "1441", "7.5", "yes", "no", "es", "F", "mn", "?"]),
    st.sampled_from(["2024-05-01 09:00", "2024-05-01T09:00:00Z", "2024-05-01", "2024-13-01 09:00", "32/13"]),
    st.sampled_from(['"a,b"', '"unterminated', "\u00e9\u00e8", "\x00", "\ufeff"]),
    st.text(max_size=8),
)


@QUICK
@given(
    st.permutations(COLUMNS).flatmap(lambda cols: st.integers(3, len(cols)).map(lambda n: cols[:n])),
    st.lists(st.lists(CELLS, max_size=20), max_size=6),
    st.sampled_from([",", ";", "\t"]),
    st.sampled_from(["\n", "\r\n"]),
)
def test_arbitrary_csv_rows_only_ever_raise_schedule_file_error(
    columns: list[str], rows: list[list[str]], delimiter: str, newline: str
) -> None:
    lines = [delimiter.join(columns)] + [delimiter.join(row) for row in rows]
    parses_or_refuses(parse_csv, newline.join(lines) + newline)


ICS_LINES = st.one_of(
    st.sampled_from(
        [
            "UID:a1",
            "UID:a2",
            "UID:",
            "DTSTART:20240501T090000",
            "DTSTART:20240501T090000Z",
            "DTSTART;VALUE=DATE:20240501",
            "DTSTART:nonsense",
            "DTSTART;TZID=Nowhere:20240501T090000",
            "DTSTART;TZID=America/Chicago:20240501T090000",
            "DTSTART;VALUE=PERIOD:20240501T090000/PT1H",
            "DTEND:20240501T091500",
            "DTEND:20240501",
            "DURATION:PT15M",
            "DURATION:-PT5M",
            "DURATION:x",
            "SUMMARY:Bella (Vaccination)",
            "SUMMARY:()",
            "SUMMARY:(",
            "STATUS:CANCELLED",
            "RRULE:FREQ=DAILY",
            "X-WAITROOM-VET:v1",
            "X-WAITROOM-VET;VALUE=INTEGER:5",
            "X-WAITROOM-VET:",
            "X-WAITROOM-TYPE:vacc",
            "X-WAITROOM-TYPE-BOOKED-MIN:15",
            "X-WAITROOM-TYPE-BOOKED-MIN:nan",
            "X-WAITROOM-CLIENT:c1",
            "X-WAITROOM-CLIENT-NAME:Maria\\, L",
            "X-WAITROOM-PET:p1",
            "X-WAITROOM-PET-NAME:Bella",
            "X-WAITROOM-SEX:F",
            "X-WAITROOM-SEX:?",
            "X-WAITROOM-SMS-CONSENT:maybe",
            "X-WAITROOM-LANGUAGE:es",
            "ORGANIZER;CN=Dr A:mailto:a@x",
            "ORGANIZER:",
            "ATTENDEE;ROLE=CHAIR:mailto:b@x",
            "ATTENDEE;CN=:",
            "BEGIN:VEVENT",
            "END:VEVENT",
            "BEGIN:VALARM",
            "END:VALARM",
            "BEGIN:VCALENDAR",
            "END:VCALENDAR",
            " folded",
            ":",
            ";;;",
            "X-;=:",
        ]
    ),
    st.text(max_size=12).map(lambda s: "X-WAITROOM-PET-NAME:" + s),
    st.text(max_size=20),
)


@QUICK
@given(st.lists(ICS_LINES, max_size=25))
def test_arbitrary_calendar_lines_only_ever_raise_schedule_file_error(lines: list[str]) -> None:
    text = "\r\n".join(["BEGIN:VCALENDAR", "BEGIN:VEVENT", *lines, "END:VEVENT", "END:VCALENDAR", ""])
    parses_or_refuses(parse_ics, text)


# --- files as clinics make them (issue 16) ---------------------------------------------

US = ImportOptions(region="US")
KIM = ImportOptions(region="US", vet=("kim", "Dr. Kim Lee"))


def appointments(doc: dict[str, Any]) -> dict[str, tuple[str, str, str | None, int]]:
    return {a["id"]: (a["scheduled"], a["vet"], a.get("pet"), a["booked_min"]) for a in doc["appointments"]}


def test_us_excel_csv_imports_its_good_rows_and_names_the_bad_one() -> None:
    # Windows-1252, CRLF, "11/27/2026 2:30 PM", headers as typed, a phone Excel mangled.
    parsed = read_schedule_file(DATA / "excel-us.csv", default_tz=TZ, options=US)
    assert appointments(parsed.doc) == {
        "A-1001": ("2026-11-27T08:30:00-06:00", "ruiz", "C-501/Bella", 15),
        "A-1002": ("2026-11-27T09:00:00-06:00", "ruiz", "C-501/Max", 30),
        "A-1004": ("2026-11-27T14:30:00-06:00", "okafor", "C-503/Luna", 20),
        "A-1005": ("2026-11-27T12:00:00-06:00", "ruiz", "C-504/Coco", 15),
    }
    assert [c["name"] for c in parsed.doc["clients"]] == ["José Núñez", "Flower Shop Ltd", "Zoë Brontë"]
    assert parsed.doc["clients"][1]["notes"] == "Owner's café, calls from work"
    [bad] = parsed.skipped
    assert (bad.where, bad.field) == ("row 4", "Mobile")
    assert "1.31256E+10" in str(bad) and "Format Cells > Text" in str(bad)
    [toll_free] = parsed.no_texts
    assert str(toll_free).startswith("row 5: Mobile: '1-800-FLOWERS' is a toll-free number")


def test_european_excel_csv_reads_day_first_dates_and_semicolons() -> None:
    madrid = ZoneInfo("Europe/Madrid")
    parsed = read_schedule_file(DATA / "excel-eu.csv", default_tz=madrid, options=ImportOptions(region="ES"))
    assert parsed.skipped == []
    assert appointments(parsed.doc) == {
        "E-1": ("2026-11-27T09:00:00+01:00", "garcia", "K-1/Toby", 15),
        "E-2": ("2026-11-27T09:30:00+01:00", "garcia", "K-2/Nala", 30),
        "E-3": ("2026-11-27T13:45:00+01:00", "garcia", "K-3/Kira", 20),
    }
    assert parsed.doc["vets"] == [{"id": "garcia", "name": "Dra. Lucía García"}]
    assert [c["sms_consent"] for c in parsed.doc["clients"]] == [True, True, False]  # "sí"
    [landline] = parsed.no_texts
    assert (
        str(landline)
        == "row 3: Mobile: '912 345 678' is a landline: it cannot take texts (reception sees it in the console)"
    )


def test_excel_unicode_text_is_utf16_tab_separated_and_reads_the_same(tmp_path: Path) -> None:
    csv_text = (DATA / "excel-us.csv").read_bytes().decode("cp1252")
    path = tmp_path / "day.txt"
    path.write_bytes(b"\xff\xfe" + csv_text.replace(",", "\t").replace("\tcalls", ",calls").encode("utf-16-le"))
    want = read_schedule_file(DATA / "excel-us.csv", default_tz=TZ, options=US)
    got = read_schedule_file(path, default_tz=TZ, options=US)
    assert got.doc["appointments"] == want.doc["appointments"]
    assert [c["name"] for c in got.doc["clients"]] == ["José Núñez", "Flower Shop Ltd", "Zoë Brontë"]
    assert [str(e) for e in got.skipped] == [str(e) for e in want.skipped]


def starts(*cells: str, options: ImportOptions | None = None) -> list[str]:
    text = csv_of(*(f"a{i},{cell},15,v1,,,,,,," for i, cell in enumerate(cells)))
    doc = parse_csv(text, default_tz=TZ, options=options or ImportOptions())
    return [a["scheduled"] for a in doc["appointments"]]


@pytest.mark.parametrize(
    ("cell", "scheduled"),
    [
        ("11/27/2026 2:30 PM", "2026-11-27T14:30:00-06:00"),
        ("11/27/2026 2:30:00 PM", "2026-11-27T14:30:00-06:00"),
        ("11/27/2026 12:05 AM", "2026-11-27T00:05:00-06:00"),
        ("11/27/2026 12:05 p.m.", "2026-11-27T12:05:00-06:00"),
        ("27/11/2026 14:30", "2026-11-27T14:30:00-06:00"),
        ("27.11.2026 14:30:00", "2026-11-27T14:30:00-06:00"),
        ("2026/11/27 14:30", "2026-11-27T14:30:00-06:00"),
        ("2026-11-27 14:30", "2026-11-27T14:30:00-06:00"),
    ],
)
def test_excel_dates_whose_order_the_cell_itself_shows(cell: str, scheduled: str) -> None:
    assert starts(cell) == [scheduled]


def test_ambiguous_dates_follow_the_setting_then_the_file_then_the_region() -> None:
    with pytest.raises(
        ScheduleFileError, match=r"'03/04/2026 09:00' \(row 2\) could be day/month or month/day.*--date-order"
    ):
        starts("03/04/2026 09:00")
    assert starts("03/04/2026 09:00", options=US) == ["2026-03-04T09:00:00-06:00"]
    assert starts("03/04/2026 09:00", options=ImportOptions(region="GB")) == ["2026-04-03T09:00:00-05:00"]
    # A day past 12 elsewhere in the file settles it, whatever the region...
    assert starts("03/04/2026 09:00", "27/04/2026 09:00", options=US)[0] == "2026-04-03T09:00:00-05:00"
    # ...but the clinic's setting (or --date-order) is what the user said: a row against it is bad.
    day_first = ImportOptions(region="US", date_order="dmy", date_order_source="--date-order dmy")
    parsed = read_csv(
        csv_of("a1,03/04/2026 09:00,15,v1,,,,,,,", "a2,11/27/2026 09:00,15,v1,,,,,,,"), default_tz=TZ, options=day_first
    )
    assert [a["scheduled"] for a in parsed.doc["appointments"]] == ["2026-04-03T09:00:00-05:00"]
    assert [str(e) for e in parsed.skipped] == [
        "row 3: start: not a date/time '11/27/2026 09:00' (no such date read as day/month/year, from --date-order dmy)"
    ]
    with pytest.raises(ScheduleFileError, match="mixes day-first dates"):
        starts("27/04/2026 09:00", "04/27/2026 09:00", options=US)


def test_canada_has_no_default_date_order() -> None:
    with pytest.raises(ScheduleFileError, match="could be day/month or month/day"):
        starts("03/04/2026 09:00", options=ImportOptions(region="CA"))


@pytest.mark.parametrize(
    ("cell", "why"),
    [
        ("11/27/2026", "a date without a time of day"),
        ("11/27/26 09:00", "write the year with four digits"),
        ("11/27/2026 13:00 PM", "is not a time of day"),
        ("11/27/2026 9:75", "is not a time of day"),
        ("02/30/2026 09:00", "no such date"),
    ],
)
def test_bad_excel_dates_say_why(cell: str, why: str) -> None:
    with pytest.raises(ScheduleFileError, match=f"^row 2: start: not a date/time .*{why}"):
        starts(cell, options=US)


def test_one_bad_mobile_in_sixty_rows_skips_only_its_row_and_names_it() -> None:
    header = "Appointment ID,Start,Duration,Vet ID,Client ID,Client Name,Pet Name,Mobile"
    rows = [
        f"a{i},11/27/2026 {8 + i // 10}:{i % 10 * 5:02d},15,v1,c{i},Client {i},Pet {i},(312) 555-{i:04d}"
        for i in range(60)
    ]
    rows[39] = rows[39].replace("(312) 555-0039", "555-01")  # row 41 as the spreadsheet shows it
    parsed = read_csv("\r\n".join([header, *rows]) + "\r\n", default_tz=TZ, options=US)
    assert [str(e) for e in parsed.skipped] == ["row 41: Mobile: not a valid phone number: '555-01'"]
    assert len(parsed.doc["appointments"]) == 59
    assert "a39" not in appointments(parsed.doc) and "c39" not in {c["id"] for c in parsed.doc["clients"]}


def test_of_two_rows_that_disagree_the_later_is_skipped() -> None:
    parsed = read_csv(
        csv_of(
            GOOD_ROW,
            "a2,2024-05-01 09:30,15,v1,Dr B,vacc,Vaccination,p2,Max,c1,Maria",
            "a3,2024-05-01 09:45,15,v1,Dr A,vacc,Vaccination,p3,Rex,c1,Maria",
        ),
        default_tz=TZ,
    )
    assert [a["id"] for a in parsed.doc["appointments"]] == ["a1", "a3"]
    assert [str(e) for e in parsed.skipped] == ["row 3: vet_name: 'Dr B' differs from 'Dr A' given for 'v1' at row 2"]


def test_a_client_named_on_no_row_costs_each_of_its_rows() -> None:
    parsed = read_csv(
        csv_of(
            GOOD_ROW,
            "a2,2024-05-01 09:30,15,v1,Dr A,vacc,,p2,Max,c2,",
            "a3,2024-05-01 09:45,15,v1,Dr A,vacc,,p3,Rex,c2,",
        ),
        default_tz=TZ,
    )
    assert [a["id"] for a in parsed.doc["appointments"]] == ["a1"]
    assert [str(e) for e in parsed.skipped] == [
        "row 3: client_name: missing for client 'c2'",
        "row 4: client_name: missing for client 'c2'",
    ]
    assert_consistent(parsed.doc)


def test_google_calendar_export_of_one_vets_day() -> None:
    parsed = read_schedule_file(DATA / "google.ics", default_tz=TZ, options=KIM)
    assert parsed.skipped == []
    assert appointments(parsed.doc) == {
        "3q9v1k0c2m8h7d6s5a4f3g2h1j@google.com": ("2026-11-27T09:00:00-06:00", "kim", "Bella", 15),
        "6t2b8n4m1x0z9c7v5q3w1e2r4t@google.com": ("2026-11-27T09:30:00-06:00", "kim", "Max", 30),
    }  # and not the cancelled Rex
    # The weekly staff meeting (organised by the practice manager) is Dr. Kim's blocked time today.
    assert parsed.doc["blocks"] == [{
        "id": "7y6t5r4e3w2q1a0s9d8f7g6h5j@google.com@20261127T180000Z", "vet": "kim",
        "start": "2026-11-27T12:00:00-06:00", "end": "2026-11-27T12:30:00-06:00", "reason": "Staff meeting",
    }]  # fmt: skip
    assert parsed.doc["vets"] == [{"id": "kim", "name": "Dr. Kim Lee"}]
    assert [str(n) for n in parsed.ignored] == [
        "line 54: DTSTART: 'Dr. Okafor on vacation': an all-day event is not an appointment: not imported "
        "(if the vet is away, mark them away in the console)",
        "line 86: TRANSP: 'Reminder: order vaccines': marked free (show as available): not imported",
    ]


def test_outlook_export_with_a_daily_lunch_and_a_private_event() -> None:
    parsed = read_schedule_file(DATA / "outlook.ics", default_tz=TZ, options=KIM)
    assert parsed.skipped == []
    assert sorted(appointments(parsed.doc).values()) == [
        ("2026-11-27T09:00:00-06:00", "kim", "Luna", 30),
        ("2026-11-27T10:00:00-06:00", "kim", "Oscar", 15),
    ]
    blocks = sorted((b["start"], b["end"], b["reason"]) for b in parsed.doc["blocks"])
    assert blocks == [
        ("2026-11-27T12:30:00-06:00", "2026-11-27T13:30:00-06:00", "Lunch"),
        # CLASS:PRIVATE "Dentist (me)": busy, but neither a pet called Dentist nor its title shown
        ("2026-11-27T15:00:00-06:00", "2026-11-27T16:00:00-06:00", ""),
    ]
    assert [n.field for n in parsed.ignored] == ["DTSTART", "TRANSP"]
    # Thanksgiving is an EXDATE of the lunch; a day asked for leaves the other days' events out.
    thursday = read_schedule_file(
        DATA / "outlook.ics",
        default_tz=TZ,
        options=ImportOptions(region="US", vet=("kim", "Dr. Kim Lee"), day=date(2026, 11, 26)),
    )
    assert thursday.doc["appointments"] == [] and "blocks" not in thursday.doc
    assert "5 events on other days than 2026-11-26: not imported" in [str(n) for n in thursday.ignored]


def test_calendar_without_vet_or_organizer_asks_for_vet() -> None:
    parsed = read_schedule_file(DATA / "outlook.ics", default_tz=TZ, options=US)
    assert parsed.doc["appointments"] == []
    assert {e.field for e in parsed.skipped} == {"X-WAITROOM-VET"}
    assert "--vet ID" in str(parsed.skipped[0])


def test_repeating_appointment_with_a_client_is_one_appointment_per_day() -> None:
    text = ics_of(
        "UID:physio",
        "DTSTART:20261102T090000",
        "DURATION:PT30M",
        "RRULE:FREQ=WEEKLY;BYDAY=MO,FR",
        "SUMMARY:Rex (Physio)",
        "X-WAITROOM-CLIENT:c1",
        "X-WAITROOM-CLIENT-NAME:Maria",
    )
    doc = parse_ics(text, default_tz=TZ, options=ImportOptions(vet=("v1", "Dr A"), day=date(2026, 11, 27)))
    assert appointments(doc) == {"physio@20261127T150000Z": ("2026-11-27T09:00:00-06:00", "v1", "c1/Rex", 30)}
    monday = parse_ics(text, default_tz=TZ, options=ImportOptions(vet=("v1", "Dr A"), day=date(2026, 11, 24)))
    assert monday["appointments"] == []  # a Tuesday


def test_a_rule_repeating_every_minute_is_refused_not_expanded_forever() -> None:
    text = ics_of("UID:spam", "DTSTART:20261127T000000", "DURATION:PT1M", "RRULE:FREQ=MINUTELY", "SUMMARY:x")
    parsed = read_ics(text, default_tz=TZ, options=ImportOptions(vet=("v1", "Dr A"), day=date(2026, 11, 27)))
    assert [str(e) for e in parsed.skipped] == ["line 4: RRULE: repeats more than 48 times on 2026-11-27"]


async def test_imported_blocked_time_holds_up_the_vets_queue(clinic_db: str) -> None:
    store = await open_store(clinic_db)
    try:
        doc = parse_schedule_file(DATA / "google.ics", default_tz=TZ, options=KIM)
        doc["appointments"].append(
            {"id": "noon", "vet": "kim", "type": "vaccination", "pet": "Coco", "scheduled": "2026-11-27T12:00:00-06:00"}
        )
        async with store.transaction() as conn:
            counts = await import_schedule(conn, doc, TZ, "US")
            assert counts["blocks"] == 1
            state = await conn.visits_for_day(date(2026, 11, 27))
        assert state.blocks == {
            "kim": [(datetime(2026, 11, 27, 12, tzinfo=TZ), datetime(2026, 11, 27, 12, 30, tzinfo=TZ))]
        }
        est = estimate(state, datetime(2026, 11, 27, 11, 0, tzinfo=TZ))
        assert est["noon"].start == datetime(2026, 11, 27, 12, 30, tzinfo=TZ)  # after the staff meeting
        # A re-import moves the block rather than doubling it.
        doc["blocks"][0]["end"] = "2026-11-27T12:45:00-06:00"
        async with store.transaction() as conn:
            await import_schedule(conn, doc, TZ, "US")
            state = await conn.visits_for_day(date(2026, 11, 27))
        assert estimate(state, datetime(2026, 11, 27, 11, 0, tzinfo=TZ))["noon"].start.minute == 45
    finally:
        await store.close()


async def test_pms_push_stays_all_or_nothing_and_names_the_field(api: Api) -> None:
    doc = {"vets": [{"id": "v9", "name": "Dr. New"}],
           "clients": [{"id": "k1", "name": "Ann", "mobile": "(312) 555-0188"},
                       {"id": "k2", "name": "Bob", "mobile": "555-01"}],
           "appointments": [{"id": "x1", "vet": "v9", "scheduled": "2026-03-02T15:00:00-06:00", "booked_min": 20}]}
    resp = await api.client.post("/api/schedule", json=doc, headers=api.h("pms"))
    assert resp.status == 400
    assert await resp.json() == {"error": "clients[1].mobile: not a valid phone number: '555-01'",
                                 "field": "clients[1].mobile"}
    assert (await api.client.get("/api/appointments/x1", headers=api.h("pms"))).status == 404
    bad_block = {"vets": doc["vets"], "blocks": [{"id": "b1", "vet": "v9", "start": "2026-03-02T13:00:00-06:00",
                                                 "end": "2026-03-02T12:00:00-06:00"}]}
    resp = await api.client.post("/api/schedule", json=bad_block, headers=api.h("pms"))
    assert resp.status == 400 and (await resp.json())["field"] == "blocks[0].end"
