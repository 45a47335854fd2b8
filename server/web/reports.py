"""The practice manager's reports page (issue 17): /console/reports, its CSVs and its charts.

    GET  /console/reports?period=day|week|month|year|custom&date=YYYY-MM-DD[&to=YYYY-MM-DD][&vet=ID][&page=N]
    GET  /console/reports/<table>.csv?...   one table, every row
    GET  /console/reports/<chart>.svg?...   one chart (the page shows them as images)
    POST /console/reports/notes             reception's note on a defect-log row (a report_note event)

Staff sign-in for all of it. The numbers come from server/reports.py; one computed report is
kept per (store version, period, vet) for a moment, so the page and its four charts compute
it once. The page shows at most ROWS_SHOWN rows of a table and pages the defect log.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import date
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from server.errors import BadRequest, NotFound
from server.events import Event
from server.http import site
from server.keys import CLOCK
from server.report_export import table_csv
from server.report_plots import PLOTS, plot
from server.reports import NOTE_MAX, PERIODS, Period, Report, build_report, load_report_data, make_period
from server.web.auth import STAFF, staff_page, staff_post
from server.web.render import render

ROWS_SHOWN = 100
DEFECTS_PER_PAGE = 50
_CACHE = web.AppKey("report_cache", OrderedDict)
_CACHE_SIZE = 8
# A chart is a standalone SVG image: its own inline styles, no script, nothing fetched.
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise BadRequest(f"{field}: expected a date as YYYY-MM-DD", field) from e


def parse_query(request: web.Request) -> tuple[Period, str | None]:
    """The period and vet a reports URL asks for (400 naming the field when it is wrong)."""
    q = request.query
    rt = site(request).runtime
    today = rt.today(request.app[CLOCK].now())
    kind = q.get("period", "week")
    if kind not in PERIODS:
        raise BadRequest(f"period: expected one of {', '.join(PERIODS)}", "period")
    anchor = _date(q["date"], "date") if q.get("date") else today
    last = _date(q["to"], "to") if q.get("to") else None
    vet = q.get("vet") or None
    if vet is not None and len(vet) > 200:
        raise BadRequest("vet: unknown vet", "vet")
    return make_period(kind, anchor, last), vet


async def report_for(request: web.Request, period: Period, vet: str | None) -> Report:
    store = site(request).store
    cache = site(request).reports_cache
    key = (store.version, period, vet)
    if key in cache:
        cache.move_to_end(key)
        rep: Report = cache[key]
        return rep
    clinic = site(request).runtime.clinic
    async with store.read() as q:
        if vet is not None and await q.vet_name(vet) is None:
            raise BadRequest(f"vet: unknown vet {vet!r}", "vet")
        data = await load_report_data(q, period, vet, clinic.tz)
    # The numbers are pure CPU work: off the event loop, so live pages keep streaming.
    rep = await asyncio.to_thread(build_report, data, period, vet=vet, settings=dict(clinic.settings))
    cache[key] = rep
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return rep


def _query(period: Period, vet: str | None, **extra: Any) -> str:
    args: dict[str, Any] = {"period": period.kind, "date": period.first.isoformat()}
    if period.kind == "custom":
        args["to"] = period.last.isoformat()
    if vet:
        args["vet"] = vet
    args.update({k: v for k, v in extra.items() if v is not None})
    return urlencode(args)


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise BadRequest("page: expected a page number", "page")
    return int(raw)


@staff_page
async def reports_page(request: web.Request) -> web.StreamResponse:
    period, vet = parse_query(request)
    page = _page_number(request)
    rep = await report_for(request, period, vet)
    async with site(request).store.read() as q:
        vets = sorted((await q.vet_names()).items(), key=lambda kv: kv[1])
    defects = rep.tables["defects"]
    pages = max(1, -(-len(defects.rows) // DEFECTS_PER_PAGE))
    page = min(page, pages)
    shown = {name: t.rows[:ROWS_SHOWN] for name, t in rep.tables.items()}
    shown["defects"] = defects.rows[(page - 1) * DEFECTS_PER_PAGE: page * DEFECTS_PER_PAGE]
    query = _query(period, vet)
    html = render(request, "reports.html", clinic=site(request).runtime.clinic.name, csrf=request[STAFF].csrf,
                  rep=rep, period=period, vet=vet, vets=vets, periods=PERIODS, tables=rep.tables, shown=shown,
                  rows_shown=ROWS_SHOWN, plots=PLOTS, query=query, page=page, pages=pages,
                  prev_query=_query(period.shifted(-1), vet), next_query=_query(period.shifted(1), vet),
                  page_query=lambda n: _query(period, vet, page=n), note_max=NOTE_MAX, live_url=None,
                  back=f"/console/reports?{_query(period, vet, page=page)}")
    return web.Response(text=html, content_type="text/html")


@staff_page
async def report_csv(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    period, vet = parse_query(request)
    rep = await report_for(request, period, vet)
    if name not in rep.tables:
        raise NotFound(f"no report named {name!r}: one of {', '.join(rep.tables)}", "name")
    fname = f"{name}-{period.first.isoformat()}-{period.last.isoformat()}.csv"
    return web.Response(text=table_csv(rep, name), content_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{fname}"'})


@staff_page
async def report_svg(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in PLOTS:
        raise NotFound(f"no chart named {name!r}: one of {', '.join(PLOTS)}", "name")
    period, vet = parse_query(request)
    rep = await report_for(request, period, vet)
    svg = await asyncio.to_thread(plot, rep, name)
    headers = {"Content-Security-Policy": SVG_CSP}
    if request.query.get("download"):
        headers["Content-Disposition"] = (f'attachment; filename="{name}-{period.first.isoformat()}-'
                                          f'{period.last.isoformat()}.svg"')
    return web.Response(text=svg, content_type="image/svg+xml", headers=headers)


@staff_post
async def add_note(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    visit = form.get("visit")
    if not isinstance(visit, str) or not visit or len(visit) > 200:
        raise BadRequest("visit: expected the visit the note is about", "visit")
    note = form.get("note")
    if not isinstance(note, str) or not note.strip():
        raise BadRequest("note: write the note first", "note")
    if len(note) > NOTE_MAX:
        raise BadRequest(f"note: at most {NOTE_MAX} characters", "note")
    back = form.get("back")
    rt = site(request).runtime
    await rt.post_event(Event("report_note", request.app[CLOCK].now(), visit, {"note": note.strip()}),
                        request[STAFF].actor, request.app[CLOCK].now())
    target = back if isinstance(back, str) and back.startswith("/console/reports?") and "//" not in back \
        else "/console/reports"
    raise web.HTTPSeeOther(target)


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/console/reports", reports_page)
    r.add_get("/console/reports/{name:[a-z_]+}.csv", report_csv)
    r.add_get("/console/reports/{name:[a-z_]+}.svg", report_svg)
    r.add_post("/console/reports/notes", add_note)
