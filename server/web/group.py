"""The group page (`/group`): every clinic of the group with a live summary, for a group admin.

A group admin is a staff account that belongs to the group rather than one clinic (`waitroom
user add --group-admin`, PostgreSQL only): it signs in at any clinic's own address and its
console, and this page lists every clinic (waiting now, the longest wait, how far the furthest
behind vet runs) with a link to each clinic's console at the clinic's own address. Staff of one
clinic get a 403 here, as does anyone at a single-clinic server that has no group admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from server.http import site
from server.keys import CLOCK, SITES
from server.site import ClinicSite
from server.web.auth import STAFF, staff_page
from server.web.render import dur, render


@dataclass(frozen=True, slots=True)
class ClinicSummary:
    clinic_id: str
    name: str
    console_url: str
    started: bool
    waiting: int = 0
    longest_wait_min: int = 0  # of the clients in the lobby now, since they checked in
    in_consult: int = 0


async def summarise(clinic: ClinicSite, now: datetime) -> ClinicSummary:
    """Waiting count and longest wait at one clinic now, from its runtime's cached day."""
    rt = clinic.runtime
    state = await rt.day_state(rt.today(now))
    waiting = [v for v in state.visits.values()
               if v.arrived is not None and v.started is None and not v.noshow and v.arrived <= now]
    in_consult = sum(1 for v in state.visits.values() if v.started is not None and v.ended is None)
    longest = max((int((now - v.arrived).total_seconds() // 60) for v in waiting if v.arrived is not None),
                  default=0)
    return ClinicSummary(clinic.clinic_id, rt.clinic.name, clinic.config.public_url.rstrip("/") + "/console",
                         True, len(waiting), longest, in_consult)


@staff_page
async def group_page(request: web.Request) -> web.StreamResponse:
    if not request[STAFF].group_admin:
        raise web.HTTPForbidden(text="This page is for the group's administrators: your account belongs to one "
                                     "clinic. Its console is at /console.")
    sites = request.app[SITES]
    now = request.app[CLOCK].now()
    started = {s.clinic_id: s for s in sites.all()}
    rows = []
    for clinic_id in sites.known():
        clinic = started.get(clinic_id)
        if clinic is None:
            rows.append(ClinicSummary(clinic_id, clinic_id, "", False))
        else:
            rows.append(await summarise(clinic, now))
    rows.sort(key=lambda r: (-r.longest_wait_min, r.name.lower()))
    html = render(request, "group.html", clinic=site(request).runtime.clinic.name, csrf=request[STAFF].csrf,
                  live_url=None, rows=rows, dur=dur, staff=request[STAFF].name,
                  waiting=sum(r.waiting for r in rows))
    return web.Response(text=html, content_type="text/html")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/group", group_page)
