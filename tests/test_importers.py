"""Schedule importers: CSV and iCalendar exports become the `POST /api/schedule` document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.importers import ScheduleFileError, parse_csv, parse_ics, parse_schedule_file
from server.schedule import import_schedule
from server.store import SqliteStore

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


GOOD_EVENT = ("UID:a1", "DTSTART:20240501T090000", "DURATION:PT15M", "X-WAITROOM-VET:v1")


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


async def test_store_accepts_the_document_and_a_reimport_changes_nothing() -> None:
    doc = parse_schedule_file(DATA / "day.csv", default_tz=TZ)
    store = await SqliteStore.open(":memory:")
    try:
        for _ in range(2):
            async with store.transaction() as conn:
                counts = await import_schedule(conn, doc, TZ, "US")
            assert counts["appointments"] == 5
        rows = await store.conn.execute_fetchall(
            "SELECT id, vet_id, type_id, pet_id, booked_min FROM appointments ORDER BY id"
        )
        assert [tuple(r) for r in rows] == [
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
        ({"DTSTART:20240501T090000": "DTSTART;VALUE=DATE:20240501"}, "line 4: DTSTART: an all-day event"),
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
        ({"X-WAITROOM-VET:v1": "X-WAITROOM-VET:v1\r\nRRULE:FREQ=DAILY"}, "line 4: RRULE: repeating events"),
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
    with pytest.raises(ScheduleFileError, match=r"^line 11: X-WAITROOM-VET-NAME: 'Dr B' differs from 'Dr A'"):
        parse_ics(text, default_tz=TZ)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("day.txt", b"", "day.txt: expected a .csv, .ics or .json file"),
        ("day.csv", b"appointment_id,start,vet_id\n\xff\xfe", "day.csv: not UTF-8 text"),
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
