"""JSON API for the practice-management system, reception and the lobby display."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any

from aiohttp import web

from server.domain import Estimate
from server.errors import AppointmentNotFound, BadRequest
from server.events import parse_event
from server.hours import max_visits_per_day
from server.http import read_json, roles, site
from server.keys import ACTOR, CLOCK
from server.openapi import openapi_document
from server.schedule import import_schedule
from server.texts import save_imported_vet_titles
from server.timeutil import iso


def estimate_json(e: Estimate, now: datetime, tz: tzinfo) -> dict[str, Any]:
    """An estimate as clients are told it: times, and minutes from now."""

    def mins(t: datetime) -> int:
        return max(0, round((t - now).total_seconds() / 60))

    return {"start": iso(e.start, tz), "p10": iso(e.p10, tz), "p90": iso(e.p90, tz),
            "wait_min": mins(e.start), "low_min": mins(e.p10), "high_min": mins(e.p90)}


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


@roles("pms", "reception")
async def post_schedule(request: web.Request) -> web.Response:
    doc = await read_json(request)
    rt = site(request).runtime
    now = request.app[CLOCK].now()
    async with site(request).store.transaction() as tx:
        counts = await import_schedule(tx, doc, rt.clinic.tz, rt.clinic.region,
                                       max_per_day=max_visits_per_day(rt.clinic.settings))
        await save_imported_vet_titles(tx, doc)
        await tx.record_event("schedule_import", now, None, {"counts": counts}, request[ACTOR], now)
        await rt.after_change(tx)
    await rt.reload_clinic()  # vets' titles live in the clinic's settings
    return web.json_response({"imported": counts})


@roles("pms", "reception")
async def post_event(request: web.Request) -> web.Response:
    body = await read_json(request)
    rt = site(request).runtime
    now = request.app[CLOCK].now()
    ev = parse_event(body, rt.clinic.tz, now)
    seq = await rt.post_event(ev, request[ACTOR], now)
    return web.json_response({"seq": seq, "type": ev.type, "appointment": ev.appointment}, status=201)


# The last /api/estimates answer, serialised: (estimates object, now to the second, body).
# Every display and phone polls this; turning ~100 estimates into JSON on each read was the
# server's main cost under load. It is rebuilt when the estimates change or a second passes.


@roles("pms", "reception", "display")
async def get_estimates(request: web.Request) -> web.Response:
    rt = site(request).runtime
    now = request.app[CLOCK].now()
    est = await rt.estimates(now)
    now = now.replace(microsecond=0)  # answers are to the second (timeutil.iso)
    # Awaited before the memo is checked: from the check to the store below nothing yields,
    # so a lobby of readers arriving after a write builds the body once, not once each.
    state = await rt.day_state(rt.today(now))
    memo = site(request).estimates_body
    if memo and memo[0] is est and memo[1] == now:
        body: bytes = memo[2]
    else:
        tz = rt.clinic.tz
        out = [{"appointment": e.visit, "vet": state.visits[e.visit].vet, **estimate_json(e, now, tz)}
               for e in sorted(est.values(), key=lambda e: (e.start, e.visit))]
        body = json.dumps({"now": iso(now, tz), "estimates": out}).encode()
        memo[:] = [est, now, body]
    return web.Response(body=body, content_type="application/json")


@roles("pms", "reception")
async def get_appointment(request: web.Request) -> web.Response:
    aid = request.match_info["id"]
    rt = site(request).runtime
    now = request.app[CLOCK].now()
    async with site(request).store.read() as q:
        found = await q.visit(aid)
    if found is None:
        raise AppointmentNotFound(aid, "id")
    v = found.visit
    tz = rt.clinic.tz

    def t(at: datetime | None) -> str | None:
        return iso(at, tz) if at else None

    est = (await rt.estimates(now)).get(aid)
    return web.json_response({
        "id": v.id, "kind": v.kind, "vet": v.vet, "type": v.type, "pet": v.pet,
        "scheduled": t(v.scheduled), "booked_min": v.booked_min, "status": found.status,
        "arrived": t(v.arrived), "started": t(v.started), "ended": t(v.ended),
        "estimate": estimate_json(est, now, tz) if est else None,
    })


# Events that change a booking (who is seen when, by whom): what a practice-management system
# must hear back about. An undo is one when what it takes back is.
BOOKING_CHANGES = ("reschedule", "cancel_visit", "reschedule_request", "move", "noshow", "walkin", "emergency")
CHANGES_MAX = 1000


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise BadRequest(f"{name}: expected a whole number from {lo} to {hi}", name)
    return int(raw)


@roles("pms")
async def get_changes(request: web.Request) -> web.Response:
    """Every booking change made here after event `since`, oldest first, from the event log:
    a client's reschedule or cancel (reschedule page or SMS), a reschedule request, reception's
    move to another vet, a no-show, a walk-in or emergency, and undos of those. `next` is the
    `since` for the following call (the log's seq numbers only grow)."""
    for name in request.query:
        if name not in ("since", "limit"):
            raise BadRequest(f"{name[:40]}: unknown parameter (this route takes since and limit)", name[:40])
    since = _int_param(request, "since", 0, 0, 2**62)
    limit = _int_param(request, "limit", 200, 1, CHANGES_MAX)
    tz = site(request).runtime.clinic.tz
    async with site(request).store.read() as q:
        events = await q.events_since(since, types=(*BOOKING_CHANGES, "undo"), limit=limit)
    out = []
    for e in events:
        if e.type == "undo" and e.data.get("type") not in BOOKING_CHANGES:
            continue
        item: dict[str, Any] = {"seq": e.seq, "type": e.type, "at": iso(e.at, tz), "appointment": e.appointment,
                                "actor": e.actor}
        for key in ("vet", "from_vet", "new_id", "pet"):
            if isinstance(e.data.get(key), str):
                item[key] = e.data[key]
        for key in ("scheduled", "from_scheduled"):
            if isinstance(e.data.get(key), str):
                item[key] = iso(datetime.fromisoformat(e.data[key]), tz)
        if e.type == "undo":
            item["undoes"] = {"seq": e.data.get("seq"), "type": e.data.get("type")}
        out.append(item)
    return web.json_response({"changes": out, "next": events[-1].seq if events else since})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_post("/api/schedule", post_schedule)
    app.router.add_post("/api/events", post_event)
    app.router.add_get("/api/estimates", get_estimates)
    app.router.add_get("/api/appointments/{id}", get_appointment)
    app.router.add_get("/api/changes", get_changes)
