"""Routes for the lobby kiosk: look up by phone, check in, walk in, ask for urgent help.

Privacy: a lookup answers with pet names, times and vet names only, and a number with no
booking answers in the same shape as one with bookings (an empty list). Every kiosk route that
takes a number or changes the day (lookup, check-in, walk-in, urgent) spends one shared budget
per kiosk token, so the kiosk cannot be used to probe the client list; a check-in by phone alone
(the offline queue's) answers with a count, never with the visits it found.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from notifier import formats
from notifier.links import status_token
from server.api import estimate_json
from server.errors import BadRequest, NotFound, TooManyRequests
from server.events import Event, apply_event
from server.hours import check_in_time
from server.http import read_json, roles, site
from server.keys import ACTOR, CLOCK
from server.runtime import ClinicRuntime
from server.schedule import normalise_mobile
from server.site import ClinicSite
from server.texts import vet_title
from server.timeutil import iso, parse_time

log = logging.getLogger("waitroom.kiosk")
UNMATCHED_TASKS = web.AppKey("kiosk_unmatched_tasks", set)
LOOKUP_FLOOR_S = 0.05
REASONS = {"sick": "sick", "injury": "sick", "vaccination": "vacc", "check-up": "wellness", "other": "sick"}


async def _spend(request: web.Request) -> None:
    """Charge one request to this kiosk token's budget, shared by lookup, check-in, walk-in and
    urgent help: whatever mix of routes a stolen token uses, it learns or changes no more than
    `kiosk_lookups_per_minute` numbers a minute, however many server processes it reaches (the
    budget is the store's: PostgreSQL keeps it in the database). A refused request costs
    nothing; the kiosk's offline queue keeps it and tries again (429 holds the queue in order,
    nothing is dropped)."""
    config = site(request).config
    if not await site(request).store.spend(f"kiosk:{request[ACTOR]}", config.kiosk_budget_window_s,
                                          config.kiosk_lookups_per_minute):
        raise TooManyRequests("too many requests from this kiosk; please see the front desk", "kiosk")


def _phone(body: dict[str, Any], region: str) -> str:
    raw = body.get("phone")
    if not isinstance(raw, str) or not raw.strip():
        raise BadRequest("phone: expected the mobile number", "phone")
    return normalise_mobile(raw, region, "phone")


def _body(raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadRequest("body: expected a JSON object", "body")
    return raw


def _idem_key(body: dict[str, Any]) -> str:
    key = body.get("idempotency_key")
    if not isinstance(key, str) or not 8 <= len(key) <= 100:
        raise BadRequest("idempotency_key: expected a string of 8 to 100 characters", "idempotency_key")
    return key




@roles("kiosk")
async def lookup(request: web.Request) -> web.Response:
    started = time.monotonic()
    await _spend(request)
    body = _body(await read_json(request))
    rt = site(request).runtime
    mobile = _phone(body, rt.clinic.region)
    now = request.app[CLOCK].now()
    async with site(request).store.read() as q:
        rows = await q.kiosk_bookings(mobile, rt.today(now))
    tz = rt.clinic.tz
    if not rows:
        # Reception hears someone could not be matched; the kiosk shows only "see the desk".
        # Recorded after answering: waiting for that write (an fsync) would make an unknown
        # number answer measurably slower than a booked one, and so tell the two apart.
        task = asyncio.create_task(_record_unmatched(request.app, site(request), mobile[-4:], request[ACTOR], now))
        request.app[UNMATCHED_TASKS].add(task)
        task.add_done_callback(request.app[UNMATCHED_TASKS].discard)
    appts = []
    for r in rows:
        appts.append({"id": r.id, "pet": r.pet, "sex": r.sex or "unknown",
                      "species": r.species, "vet": r.vet_name,
                      "scheduled": iso(r.scheduled, tz) if r.scheduled else None,
                      "checked_in": r.status == "waiting"})
    answer = web.json_response({"now": iso(now, tz), "appointments": appts,
                                "sms_consent": any(r.sms_consent for r in rows)})
    # Every answer takes at least LOOKUP_FLOOR_S: a booked number's answer costs more work than
    # an unknown one's (its rows, a longer body), and that difference must not tell a stranger
    # at the kiosk whether a number belongs to a client. A person typed the number: 50 ms is
    # nothing to them.
    await asyncio.sleep(max(0.0, LOOKUP_FLOOR_S - (time.monotonic() - started)))
    return answer


async def _visits_answer(request: web.Request, rt: ClinicRuntime, ids: list[str]) -> web.Response:
    now = request.app[CLOCK].now()
    tz = rt.clinic.tz
    est = await rt.estimates(now)
    secret = site(request).config.secret
    base = site(request).config.public_url.rstrip("/")
    async with site(request).store.read() as q:
        vets = await q.vet_names()
        found = [(aid, await q.visit_contact(aid), await q.visit(aid)) for aid in ids]
    # Spanish sentences name a vet with title and article ("con la Dra. Ana Ruiz").
    vet_es = {name: formats.vet_es(name, vet_title(rt.clinic, vid)) for vid, name in vets.items()}
    out = []
    for aid, contact, stored in found:
        if contact is None or stored is None:
            continue
        scheduled = stored.visit.scheduled
        e = est.get(aid)
        vet = vets.get(contact.vet_id, contact.vet_id)
        out.append({"appointment": aid, "kind": contact.kind, "pet": contact.pet, "sex": contact.sex or "unknown",
                    "vet": vet, "vet_es": vet_es.get(vet, vet), "status": contact.status,
                    "scheduled": iso(scheduled, tz) if scheduled else None,
                    "estimate": estimate_json(e, now, tz) if e else None,
                    "status_url": f"{base}/s/{status_token(secret, aid)}"})
    return web.json_response({"now": iso(now, tz), "visits": out})


# The oldest offline check-in a kiosk may report: a queue older than this is not today's.
MAX_AGE_S = 24 * 3600


def _taken_at(body: dict[str, Any], now: datetime, rt: ClinicRuntime) -> datetime:
    """When an (offline) check-in happened. The server never takes a device's wall clock:
    the kiosk reports `age_s`, how long ago it took the check-in by its monotonic clock,
    and the time is the server's receipt time minus that age. An older kiosk's `taken_at`
    is still read, bounded like every time (year 1 or 9999: 400). Either way the result is
    clamped to today's opening hours and never later than now."""
    tz = rt.clinic.tz
    age = body.get("age_s")
    if age is not None:
        if isinstance(age, bool) or not isinstance(age, int | float) or not 0 <= age <= MAX_AGE_S:
            raise BadRequest(f"age_s: expected seconds between 0 and {MAX_AGE_S}", "age_s")
        taken = now - timedelta(seconds=float(age))
    elif body.get("taken_at") is not None:
        taken = parse_time(body["taken_at"], tz, "taken_at")
    else:
        return now
    return check_in_time(rt.clinic.settings, now, tz, taken)


@roles("kiosk")
async def checkin(request: web.Request) -> web.Response:
    await _spend(request)
    body = _body(await read_json(request))
    key = _idem_key(body)
    rt = site(request).runtime
    store = site(request).store
    mobile = _phone(body, rt.clinic.region)
    wanted = body.get("appointments", [])
    if not isinstance(wanted, list) or not all(isinstance(x, str) for x in wanted):
        raise BadRequest("appointments: expected a list of appointment ids", "appointments")
    consent = body.get("sms_consent")
    if consent is not None and not isinstance(consent, bool):
        raise BadRequest("sms_consent: expected true or false", "sms_consent")
    now = request.app[CLOCK].now()
    at = _taken_at(body, now, rt)
    # No appointments named: "check in everything of this number's today", the offline queue's
    # check-in by phone (nobody saw a list to pick from). Its answer names no visit: a number
    # typed at the kiosk must not show whose pets, vets and times (or status links) it finds.
    by_phone = not wanted
    async with store.transaction() as tx:
        done = await tx.remembered_answer(key)
        if done is None:
            mine = {r.id: r for r in await tx.kiosk_bookings(mobile, rt.today(now))}
            if by_phone:
                wanted = list(mine)
            for aid in wanted:
                if aid not in mine:
                    raise NotFound("appointments: no such appointment for this number today", "appointments")
            for aid in wanted:
                if mine[aid].status == "booked":
                    data = {"by_phone": True} if by_phone else {}
                    await apply_event(tx, Event("checkin", at, aid, data), request[ACTOR], rt.clinic.tz, now)
            if consent is not None:
                for client in sorted({mine[aid].client for aid in wanted}):
                    await tx.set_sms_consent(client, consent)
                    await apply_event(tx, Event("consent", now, None, {"client": client, "sms": consent}),
                                      request[ACTOR], rt.clinic.tz, now)
            if not wanted:
                await apply_event(tx, Event("kiosk_unmatched", now, None, {"phone_last4": mobile[-4:]}),
                                  request[ACTOR], rt.clinic.tz, now)
            await tx.remember_answer(key, wanted, now)
            await rt.after_change(tx)
            done = wanted
    if by_phone:
        tz = rt.clinic.tz
        return web.json_response({"now": iso(request.app[CLOCK].now(), tz), "visits": [], "checked_in": len(done)})
    return await _visits_answer(request, rt, done)


@roles("kiosk")
async def walkin(request: web.Request) -> web.Response:
    await _spend(request)
    body = _body(await read_json(request))
    key = _idem_key(body)
    rt = site(request).runtime
    store = site(request).store
    fields = {}
    for name in ("name", "pet", "species", "reason"):
        v = body.get(name)
        if not isinstance(v, str) or not v.strip() or len(v) > 100:
            raise BadRequest(f"{name}: expected a short text", name)
        fields[name] = v.strip()
    mobile = _phone(body, rt.clinic.region) if body.get("phone") else None
    now = request.app[CLOCK].now()
    async with store.transaction() as tx:
        done = await tx.remembered_answer(key)
        if done is None:
            vet = await _least_busy_vet(rt, now)
            types = set(await tx.booked_lengths())
            type_id = REASONS.get(fields["reason"].lower())
            aid = f"w-{secrets.token_hex(4)}"
            client, pet = f"walkin-{aid}", f"walkin-pet-{aid}"
            await tx.add_walkin_client(client, fields["name"], mobile, pet, fields["pet"], fields["species"])
            # The walk-in's event names the new client and pet it made (ids, pet and species: no
            # name or number in the log), in the same transaction.
            data = {"vet": vet, "type": type_id if type_id in types else None, "booked_min": None,
                    "pet": fields["pet"], "reason": fields["reason"], "client": client, "pet_id": pet,
                    "species": fields["species"]}
            await apply_event(tx, Event("walkin", now, aid, data), request[ACTOR], rt.clinic.tz, now)
            await tx.link_visit_to_pet(aid, pet)
            await tx.remember_answer(key, [aid], now)
            await rt.after_change(tx)
            done = [aid]
    return await _visits_answer(request, rt, done)


async def _least_busy_vet(rt: ClinicRuntime, now: datetime) -> str:
    state = await rt.day_state(rt.today(now))
    if not state.vets:
        raise BadRequest("the clinic has no vets today", "vet")
    waiting = {v: 0 for v in state.vets}
    for visit in state.visits.values():
        if visit.arrived is not None and visit.started is None and not visit.noshow and visit.vet in waiting:
            waiting[visit.vet] += 1
    return min(state.vets, key=lambda v: (waiting[v], v))


@roles("kiosk")
async def urgent(request: web.Request) -> web.Response:
    await _spend(request)
    body = _body(await read_json(request))
    key = _idem_key(body)
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 500):
        raise BadRequest("note: expected a short text", "note")
    rt = site(request).runtime
    now = request.app[CLOCK].now()
    async with site(request).store.transaction() as tx:
        if await tx.remembered_answer(key) is None:
            await apply_event(tx, Event("urgent", now, None, {"note": note}), request[ACTOR], rt.clinic.tz, now)
            await tx.remember_answer(key, [], now)
            await rt.after_change(tx)
    return web.json_response({"ok": True})


@roles("kiosk")
async def visit(request: web.Request) -> web.Response:
    """A visit's live estimate, only for a visit this kiosk itself checked in because someone
    picked it on screen (or a walk-in): not one checked in by phone alone (ids can be guessed)."""
    aid = request.match_info["id"]
    async with site(request).store.read() as q:
        here = await q.checked_in_here(aid, request[ACTOR])
    if not here:
        raise NotFound("no visit checked in at this kiosk with that id", "id")
    return await _visits_answer(request, site(request).runtime, [aid])


@roles("kiosk")
async def clinic(request: web.Request) -> web.Response:
    """The clinic's name, for the kiosk's top bar. No client data: it spends no budget."""
    return web.json_response({"name": site(request).runtime.clinic.name})


async def _record_unmatched(app: web.Application, clinic: ClinicSite, last4: str, actor: str,
                            now: datetime) -> None:
    try:
        async with clinic.store.transaction() as tx:
            await apply_event(tx, Event("kiosk_unmatched", now, None, {"phone_last4": last4}),
                              actor, clinic.runtime.clinic.tz, now)
            await clinic.runtime.after_change(tx)
    except Exception:
        log.exception("could not record an unmatched kiosk lookup")


async def _drain_unmatched(app: web.Application) -> None:
    """On shutdown, before the store closes: let pending unmatched-lookup records finish."""
    if app[UNMATCHED_TASKS]:
        await asyncio.gather(*app[UNMATCHED_TASKS], return_exceptions=True)


def setup_routes(app: web.Application) -> None:
    app[UNMATCHED_TASKS] = set()
    app.on_shutdown.append(_drain_unmatched)
    app.router.add_post("/api/kiosk/lookup", lookup)
    app.router.add_post("/api/kiosk/checkin", checkin)
    app.router.add_post("/api/kiosk/walkin", walkin)
    app.router.add_post("/api/kiosk/urgent", urgent)
    app.router.add_get("/api/kiosk/visits/{id}", visit)
    app.router.add_get("/api/kiosk/clinic", clinic)
