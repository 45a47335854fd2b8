"""Reports for the practice manager (issue 17): the numbers of a day whose answers are worked out
by hand, the store's report queries on a real SQLite file, and /console/reports with its CSVs,
charts and defect-log notes on a real server."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from server.errors import BadRequest
from server.reports import ReportData, build_report, make_period
from server.store.interface import LoggedEvent
from server.store.reports import ReportRecovery, ReportReply, ReportText, ReportVisit, ToldRange
from tests.conftest import DAY, Api
from tests.test_web_console import Desk
from tests.test_web_console import desk as desk  # the signed-in desk fixture

D = date(2026, 3, 2)  # a Monday


def at(hm: str) -> datetime:
    h, m = map(int, hm.split(":"))
    return datetime(2026, 3, 2, h, m, tzinfo=UTC)


def visit(vid: str, vet: str, sched: str | None, arrived: str | None, start: str | None, end: str | None, *,
          kind: str = "appointment", status: str = "done", booked: float = 20) -> ReportVisit:
    return ReportVisit(vid, kind, D, vet, {"v1": "Dr. One", "v2": "Dr. Two"}[vet], "exam", "Exam", f"pet {vid}",
                       f"client {vid}", at(sched) if sched else None, booked, status,
                       at(arrived) if arrived else None, at(start) if start else None, at(end) if end else None)


def known_day() -> ReportData:
    """Dr. One: a1 overruns 10 min; a2 starts 10 min late; an emergency takes 30 min; a3, told
    09:40-10:00 at check-in and 10:10 by text at 09:55, starts 10:20; a4 arrives 10 min late and
    is never told; a5 does not come. Dr. Two is away 09:00-09:30, so b1 starts 30 min late."""
    visits = [
        visit("a1", "v1", "09:00", "08:55", "09:00", "09:30"),
        visit("a2", "v1", "09:20", "09:15", "09:30", "09:50"),
        visit("e1", "v1", None, "09:50", "09:50", "10:20", kind="emergency", booked=45),
        visit("a3", "v1", "09:40", "09:38", "10:20", "10:40"),
        visit("a4", "v1", "10:00", "10:10", "10:40", "11:00"),
        visit("a5", "v1", "10:20", None, None, None, status="noshow"),
        visit("b1", "v2", "09:00", "08:58", "09:30", "09:50"),
    ]
    told = [ToldRange("a3", at("09:38"), at("09:45"), at("09:40"), at("10:00"), "checkin"),
            ToldRange("a3", at("09:55"), at("10:05"), at("09:55"), at("10:10"), "text")]
    texts = [ReportText(1, "a3", "delay", "delivered", 2, at("09:55")),
             ReportText(2, "a4", "delay", "failed", 1, at("10:15"))]
    log = [LoggedEvent(1, at("08:50"), at("08:50"), "vet_late", None,
                       {"vet": "v2", "until": at("09:30").isoformat()}, "user:ana"),
           LoggedEvent(2, at("11:30"), at("11:30"), "report_note", "a4", {"note": "called her back"}, "user:ana", "v1")]
    return ReportData(UTC, visits, told, texts, [ReportReply("yes", "a3", at("09:57"))], 1, log,
                      [ReportRecovery("a3", "exam fee waived", at("10:45"))])


def rows(rep: Any, name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = rep.tables[name].as_dicts()
    return out


def test_waits_median_and_p90_of_a_known_day() -> None:
    rep = build_report(known_day(), make_period("day", D))
    one = next(r for r in rows(rep, "waits_by_vet") if r["vet"] == "Dr. One")
    # check-in -> start: a1 5, a2 15, e1 0, a3 42, a4 30; booked -> start: 0, 10, 40, 40
    assert (one["visits seen"], one["wait median (min)"], one["wait P90 (min)"]) == (5, 15.0, 37.2)
    assert (one["late median (min)"], one["late P90 (min)"]) == (25.0, 40.0)


def test_delay_minutes_are_split_by_cause_and_add_up_to_the_lateness() -> None:
    rep = build_report(known_day(), make_period("day", D))
    [day] = rows(rep, "delay_by_cause")
    # a2 10 (overrun of a1); a3 40 (overrun 10 + emergency 30); a4 40 (own late arrival 10, then
    # 30 split 1:3 over overrun and emergency); b1 30 (Dr. Two away).
    assert day["overrun (min)"] == round(10 + 10 + 7.5)
    assert day["emergency (min)"] == round(30 + 22.5)
    assert (day["late arrival (min)"], day["vet late/away (min)"], day["other (min)"]) == (10, 30, 0)
    assert day["total (min)"] == 10 + 40 + 40 + 30


def test_defect_log_uses_the_range_told_last_and_the_untold_threshold() -> None:
    rep = build_report(known_day(), make_period("day", D), settings={"defect_untold_min": 15})
    by_visit = {r["visit"]: r for r in rows(rep, "defects")}
    # a2 was 10 min late, never told: under the 15-min threshold. b1 (30 min) and a4 (40) are in.
    assert sorted(by_visit) == ["a3", "a4", "b1"]
    a3 = by_visit["a3"]
    assert (a3["told until"], a3["min past"], a3["cause"], a3["texted"], a3["recovery"]) == \
        ("10:10", 10, "emergency", "09:55 delay", "exam fee waived")
    a4 = by_visit["a4"]
    assert (a4["min past"], a4["cause"], a4["texted"]) == (40, "emergency", "no")  # its only text failed
    assert a4["note"] == "called her back (ana)"
    assert by_visit["b1"]["cause"] == "vet late/away"
    stricter = build_report(known_day(), make_period("day", D), settings={"defect_untold_min": 35})
    assert sorted(r["visit"] for r in rows(stricter, "defects")) == ["a3", "a4"]


def test_no_shows_late_arrivals_texts_and_accuracy_of_a_known_day() -> None:
    rep = build_report(known_day(), make_period("day", D))
    att = {(r["by"], r["group"]): r for r in rows(rep, "attendance")}
    one = att[("vet", "Dr. One")]
    assert (one["booked"], one["no-shows"], one["no-show %"], one["late arrivals"]) == (5, 1, 20.0, 1)
    assert att[("weekday", "Mon")]["booked"] == 6
    texts = {r["measure"]: r["count"] for r in rows(rep, "texts")}
    assert (texts["texts queued"], texts["delivered (confirmed)"], texts["failed"]) == (2, 1, 1)
    assert (texts["segments (what the provider bills)"], texts["replies: yes"], texts["opt-outs (STOP)"]) == (2, 1, 1)
    [acc] = rows(rep, "accuracy")
    # a3's check-in estimate (09:45, 09:40-10:00) against its 10:20 start.
    assert (acc["estimates"], acc["estimate MAE (min)"], acc["started inside range %"]) == (1, 35.0, 0.0)
    # Booked queue at check-in: a1 09:00 (0 off), a2 09:20 (10), a3 09:50 (30), a4 10:55 (15), b1 09:00 (30).
    assert (acc["baseline visits"], acc["booked-length baseline MAE (min)"]) == (5, 17.0)
    assert "35 min" in rep.readings["accuracy"] and "17 min" in rep.readings["accuracy"]


def test_periods_and_their_limits() -> None:
    assert make_period("week", date(2026, 3, 4)).first == date(2026, 3, 2)
    m = make_period("month", date(2026, 2, 14))
    assert (m.first, m.last, m.shifted(1).first, m.shifted(-1).last) == \
        (date(2026, 2, 1), date(2026, 2, 28), date(2026, 3, 1), date(2026, 1, 31))
    assert make_period("month", date(2026, 12, 5)).shifted(1).first == date(2027, 1, 1)
    with pytest.raises(BadRequest) as e:
        make_period("custom", date(2020, 1, 1), date(2026, 1, 1))
    assert e.value.field == "to"
    with pytest.raises(BadRequest):
        make_period("fortnight", D)


# -- the page, on a real server -------------------------------------------------------------------


def _q(period: str = "month") -> str:
    return f"period={period}&date={(DAY - timedelta(days=3)).isoformat()}"


async def test_reports_need_a_staff_sign_in(api: Api) -> None:
    for path in ("/console/reports", "/console/reports/defects.csv", "/console/reports/waits.svg"):
        resp = await api.client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login"), path


async def test_reports_page_shows_the_seeded_history(desk: Desk) -> None:
    resp = await desk.client.get(f"/console/reports?{_q()}")
    html = await resp.text()
    assert resp.status == 200
    for title in ("Waits by vet", "Why the day ran late", "Service-defect log", "No-shows and late arrivals",
                  "Texts", "How good our estimates were"):
        assert title in html
    assert "Dr. Ana Ruiz" in html and "Nothing in this period" not in html.split("Service-defect log")[1][:2000]


async def test_each_table_downloads_as_csv_with_the_pages_numbers(desk: Desk) -> None:
    resp = await desk.client.get(f"/console/reports/waits_by_vet.csv?{_q()}")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(await resp.text())))
    vets = {r["vet"] for r in table}
    assert {"Dr. Ana Ruiz", "Dr. Ben Okafor", "Dr. Chloe Martin", "All vets"} == vets
    assert all(float(r["wait median (min)"]) >= 0 for r in table)
    missing = await desk.client.get(f"/console/reports/nothing.csv?{_q()}")
    assert missing.status == 404


async def test_charts_are_svg_with_a_title_and_a_reading(desk: Desk) -> None:
    resp = await desk.client.get(f"/console/reports/delay.svg?{_q()}&download=1")
    svg = await resp.text()
    assert resp.status == 200 and resp.content_type == "image/svg+xml" and svg.startswith("<svg")
    assert "Why the day ran late" in svg and "client-minutes of delay" in svg
    assert "attachment" in resp.headers["Content-Disposition"]


@pytest.mark.parametrize(("query", "field"), [("period=fortnight", "period"), ("period=day&date=03/02/2026", "date"),
                                              ("period=custom&date=2026-03-01", "to"), ("vet=nobody", "vet"),
                                              ("page=0", "page")])
async def test_a_bad_report_query_is_a_400_naming_the_field(desk: Desk, query: str, field: str) -> None:
    resp = await desk.client.get(f"/console/reports?{query}")
    assert resp.status == 400
    assert (await resp.json())["field"] == field


async def test_reception_adds_a_note_to_a_defect_row(desk: Desk) -> None:
    text = await (await desk.client.get(f"/console/reports/defects.csv?{_q()}")).text()
    first = next(csv.DictReader(io.StringIO(text)))
    back = f"/console/reports?{_q()}"
    resp = await desk.client.post("/console/reports/notes",
                                  data={"visit": first["visit"], "note": "Phoned, apologised", "csrf": desk.csrf,
                                        "back": back},
                                  allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == back
    [ev] = await desk.events("report_note")
    assert ev["appointment_id"] == first["visit"] and ev["actor"] == "user:ana"
    text = await (await desk.client.get(f"/console/reports/defects.csv?{_q()}")).text()
    row = next(r for r in csv.DictReader(io.StringIO(text)) if r["visit"] == first["visit"])
    assert row["note"] == "Phoned, apologised (ana)"
    nocsrf = await desk.client.post("/console/reports/notes", data={"visit": first["visit"], "note": "x"},
                                    allow_redirects=False)
    assert nocsrf.status == 403
    unknown = await desk.client.post("/console/reports/notes",
                                     data={"visit": "no-such-visit", "note": "x", "csrf": desk.csrf},
                                     allow_redirects=False)
    assert unknown.status == 404


# -- the command line --------------------------------------------------------------------------------


def test_waitroom_report_writes_csv_json_and_one_html_file(clinic_db: str, tmp_path: Any,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    import json

    from server.cli import main
    from tests.conftest import seed_clinic

    db = clinic_db
    asyncio.run(seed_clinic(db))
    span = ["--db", str(db), "--from", (DAY - timedelta(days=14)).isoformat(), "--to", DAY.isoformat()]
    assert main(["report", *span, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tables"]["waits_by_vet"]["rows"] and doc["tables"]["defects"]["rows"]
    assert main(["report", *span, "--format", "csv", "--table", "attendance"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["by"] for r in rows} == {"vet", "weekday", "type"}
    out = tmp_path / "report.html"
    assert main(["report", *span, "--format", "html", "--out", str(out)]) == 0
    page = out.read_text()
    assert page.count("<svg") == 4 and "Service-defect log" in page
    import re

    assert not re.search(r'(src|href)="(?!#|data:)', page)  # self-contained: nothing fetched
    assert main(["report", "--db", str(db), "--from", "2026-03-10", "--to", "2026-03-01"]) == 2
    assert "before the start" in capsys.readouterr().err
