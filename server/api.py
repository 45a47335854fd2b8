"""JSON API for the practice-management system, reception and the lobby display."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any

from aiohttp import web

from server.app import ACTOR, CLOCK, RUNTIME, STORE, read_json, roles
from server.domain import Estimate
from server.errors import AppointmentNotFound
from server.events import parse_event
from server.openapi import openapi_document
from server.schedule import import_schedule
from server.store import fetch
from server.timeutil import from_db, iso


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
    rt = request.app[RUNTIME]
    async with request.app[STORE].transaction() as conn:
        counts = await import_schedule(conn, doc, rt.clinic.tz, rt.clinic.region)
    return web.json_response({"imported": counts})


@roles("pms", "reception")
async def post_event(request: web.Request) -> web.Response:
    body = await read_json(request)
    rt = request.app[RUNTIME]
    now = request.app[CLOCK].now()
    ev = parse_event(body, rt.clinic.tz, now)
    seq = await rt.post_event(ev, request[ACTOR], now)
    return web.json_response({"seq": seq, "type": ev.type, "appointment": ev.appointment}, status=201)


# The last /api/estimates answer, serialised: (estimates object, now to the second, body).
# Every display and phone polls this; turning ~100 estimates into JSON on each read was the
# server's main cost under load. It is rebuilt when the estimates change or a second passes.
ESTIMATES_BODY = web.AppKey("estimates_body", list)


@roles("pms", "reception", "display")
async def get_estimates(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    now = request.app[CLOCK].now()
    est = await rt.estimates(now)
    now = now.replace(microsecond=0)  # answers are to the second (timeutil.iso)
    # Awaited before the memo is checked: from the check to the store below nothing yields,
    # so a lobby of readers arriving after a write builds the body once, not once each.
    state = await rt.day_state(rt.today(now))
    memo = request.app[ESTIMATES_BODY]
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
    rt = request.app[RUNTIME]
    now = request.app[CLOCK].now()
    rows = await fetch(request.app[STORE].conn,
        "SELECT a.*, COALESCE(p.name, a.pet_name) AS pet FROM appointments a "
        "LEFT JOIN pets p ON p.id = a.pet_id WHERE a.id = ?", (aid,))
    if not rows:
        raise AppointmentNotFound(aid, "id")
    r = rows[0]
    tz = rt.clinic.tz

    def t(col: str) -> str | None:
        v = from_db(r[col])
        return iso(v, tz) if v else None

    est = (await rt.estimates(now)).get(aid)
    return web.json_response({
        "id": r["id"], "kind": r["kind"], "vet": r["vet_id"], "type": r["type_id"], "pet": r["pet"],
        "scheduled": t("scheduled"), "booked_min": r["booked_min"], "status": r["status"],
        "arrived": t("arrived"), "started": t("started"), "ended": t("ended"),
        "estimate": estimate_json(est, now, tz) if est else None,
    })


def setup_routes(app: web.Application) -> None:
    app[ESTIMATES_BODY] = []
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_post("/api/schedule", post_schedule)
    app.router.add_post("/api/events", post_event)
    app.router.add_get("/api/estimates", get_estimates)
    app.router.add_get("/api/appointments/{id}", get_appointment)
