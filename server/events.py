"""Events: validated, checked against the visit's state, appended to the log.

`apply_event` is the one function that changes what happened today; the API, the kiosk
routes, the console and the replay all call it inside `store.transaction()`, then
`runtime.after_change(tx)`. Every change goes through the store's named operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from server.domain import Visit, VisitKind
from server.errors import AppointmentNotFound, BadRequest, Conflict, NotFound, TooLarge
from server.hours import EVENT_WINDOW, max_visits_per_day
from server.store import StoredVisit, Tx
from server.timeutil import parse_time, within

# Events about a visit that already exists, and the statuses each may move from.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "checkin": (("booked",), "waiting"),
    "start": (("booked", "waiting"), "in_consult"),
    "end": (("in_consult",), "done"),
    "emergency_start": (("waiting",), "in_consult"),
    "emergency_end": (("in_consult",), "done"),
    "noshow": (("booked", "waiting"), "noshow"),
}
CREATING = ("walkin", "emergency")
VET_EVENTS = ("vet_late", "vet_available")
OTHER = ("urgent",)
EVENT_TYPES = (*TRANSITIONS, *CREATING, *VET_EVENTS, *OTHER)
# Reception's overrides from the console (server/web/console.py builds these Events; the JSON
# API does not take them). Every override but `undo` itself can be undone by an `undo` event
# naming its seq, so a slip at the desk is one click to take back and stays in the log.
# report_note: reception's note on a row of the service-defect log (server/web/reports.py).
OVERRIDES = ("move", "reorder", "pause_texts", "resume_texts", "send_text", "in_car", "ack", "report_note", "undo")
UNDOABLE = (*TRANSITIONS, *CREATING, *VET_EVENTS, *OVERRIDES[:-1])
# A client's own changes through the signed reschedule link (server/web/reschedule.py builds
# these; not in the JSON API): move the booking, cancel it, or ask reception to move it.
CLIENT_CHANGES = ("reschedule", "cancel_visit", "reschedule_request")
# Events that change no visit's state: they never stop an earlier event being undone.
_STATELESS = ("send_text", "in_car", "ack", "report_note", "undo", "pause_texts", "resume_texts", "consent",
              "kiosk_unmatched",
              "reschedule_request")


@dataclass(slots=True)
class Event:
    type: str
    at: datetime
    appointment: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def parse_event(body: object, tz: tzinfo, now: datetime) -> Event:
    """An event from its JSON form (the replay protocol's shapes); BadRequest names the field."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object", "body")
    kind = body.get("type")
    if kind not in EVENT_TYPES:
        raise BadRequest(f"type: expected one of {', '.join(EVENT_TYPES)}", "type")
    # Never trusted beyond a day from the server's clock: an event "at 2100" stretched every
    # page to a century and stalled the server (issue 11).
    at = within(parse_time(body["at"], tz, "at"), now, EVENT_WINDOW, "at") if body.get("at") is not None else now
    if kind in ("emergency_start", "emergency_end"):
        ref = body.get("id", body.get("appointment"))
        if not isinstance(ref, str) or not ref:
            raise BadRequest("id: expected the emergency's id", "id")
        return Event(kind, at, ref)
    if kind in TRANSITIONS:
        ref = body.get("appointment")
        if not isinstance(ref, str) or not ref:
            raise BadRequest("appointment: expected an appointment id", "appointment")
        return Event(kind, at, ref)
    if kind == "walkin":
        a = body.get("appointment")
        if not isinstance(a, dict):
            raise BadRequest("appointment: expected the walk-in as an object", "appointment")
        data = {
            "vet": _need_str(a, "vet", "appointment.vet"),
            "type": _opt_str(a, "type", "appointment.type"),
            "booked_min": _opt_minutes(a, "booked_min", "appointment.booked_min"),
            "pet": _opt_str(a, "pet", "appointment.pet"),
        }
        return Event(kind, at, _need_str(a, "id", "appointment.id"), data)
    if kind == "emergency":
        data = {
            "vet": _need_str(body, "vet", "vet"),
            "expected_min": _opt_minutes(body, "expected_min", "expected_min"),
            "pet": _opt_str(body, "pet", "pet"),
        }
        return Event(kind, at, _need_str(body, "id", "id"), data)
    if kind == "vet_late":
        minutes = _opt_minutes(body, "minutes", "minutes")
        until = parse_time(body["until"], tz, "until") if body.get("until") is not None else None
        if until is not None:
            within(until, now, EVENT_WINDOW, "until")
        if (minutes is None) == (until is None):
            raise BadRequest("minutes: give either minutes or until", "minutes")
        if until is None:
            assert minutes is not None
            until = at + timedelta(minutes=minutes)
        return Event(kind, at, None, {"vet": _need_str(body, "vet", "vet"), "until": until.isoformat(),
                                      "reason": _opt_str(body, "reason", "reason")})
    if kind == "vet_available":
        return Event(kind, at, None, {"vet": _need_str(body, "vet", "vet")})
    return Event(kind, at, None, {"note": _opt_str(body, "note", "note")})  # urgent


def _need_str(d: dict[str, Any], key: str, field_name: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v.strip() or len(v) > 200:
        raise BadRequest(f"{field_name}: expected a non-empty string", field_name)
    return v.strip()


def _opt_str(d: dict[str, Any], key: str, field_name: str) -> str | None:
    return None if d.get(key) is None else _need_str(d, key, field_name)


def _opt_minutes(d: dict[str, Any], key: str, field_name: str) -> float | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 24 * 60:
        raise BadRequest(f"{field_name}: expected minutes between 0 and 1440", field_name)
    return float(v)


async def apply_event(tx: Tx, ev: Event, actor: str, tz: tzinfo, now: datetime) -> int:
    """Check the event against the visit's state, make the change, append to the log: all
    through the store's named operations, in the caller's transaction (`store.transaction()`).

    Returns the event's sequence number. The caller then calls `runtime.after_change(tx)`.
    """
    if ev.type in TRANSITIONS:
        await _transition(tx, ev)
    elif ev.type in CREATING:
        await _create_visit(tx, ev, tz)
    elif ev.type in VET_EVENTS:
        vet = ev.data["vet"]
        if not await tx.has_vet(vet):
            raise BadRequest(f"vet: unknown vet {vet!r}", "vet")
        # Kept in the log so an undo can put back what was in force before.
        prev = await tx.vet_unavailable_until(vet)
        ev.data["previous_until"] = prev.isoformat() if prev else None
        await tx.set_vet_unavailable_until(vet, _time(ev.data.get("until")))
    elif ev.type in OVERRIDES:
        await _override(tx, ev, actor, now)
    elif ev.type in CLIENT_CHANGES:
        await _client_change(tx, ev, tz, now)
    return await tx.record_event(ev.type, ev.at, ev.appointment, ev.data, actor, now)


def _time(value: object) -> datetime | None:
    """A time kept in an event's data (ISO 8601 text)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else None


async def _transition(tx: Tx, ev: Event) -> None:
    assert ev.appointment is not None
    found = await tx.visit(ev.appointment)
    field_name = "id" if ev.type.startswith("emergency") else "appointment"
    if found is None:
        if ev.type.startswith("emergency"):
            raise NotFound(f"unknown emergency {ev.appointment!r}", field_name)
        raise AppointmentNotFound(ev.appointment)
    kind, status, started = found.visit.kind, found.status, found.visit.started
    is_emergency = kind == "emergency"
    if is_emergency != ev.type.startswith("emergency"):
        what = "an emergency" if is_emergency else "not an emergency"
        raise Conflict(f"{ev.appointment!r} is {what}: use the matching event type", field_name)
    if ev.type == "checkin" and kind != "appointment":
        raise Conflict(f"{ev.appointment!r} is a {kind}, already checked in", field_name)
    allowed, new_status = TRANSITIONS[ev.type]
    if status not in allowed:
        raise Conflict(_why(ev.type, status), field_name)
    if new_status == "waiting":
        await tx.record_arrival(ev.appointment, ev.at)
    elif new_status == "in_consult":
        # Called in without a kiosk check-in: the client was there when the consult began.
        await tx.record_start(ev.appointment, ev.at)
    elif new_status == "done":
        if started is not None and ev.at < started:
            raise Conflict("end: before the consult started", "at")
        await tx.record_end(ev.appointment, ev.at)
    else:
        await tx.set_visit_status(ev.appointment, new_status)


def _why(event: str, status: str) -> str:
    said = {
        "waiting": "already checked in",
        "in_consult": "already in consult",
        "done": "already finished",
        "noshow": "marked a no-show",
        "cancelled": "cancelled",
        "booked": "not started yet",
    }[status]
    return f"{event}: the visit is {said}"


async def _create_visit(tx: Tx, ev: Event, tz: tzinfo) -> None:
    assert ev.appointment is not None
    field_name = "appointment.id" if ev.type == "walkin" else "id"
    if await tx.visit(ev.appointment) is not None:
        raise Conflict(f"{ev.type}: {ev.appointment!r} exists already", field_name)
    vet = ev.data["vet"]
    vet_field = "appointment.vet" if ev.type == "walkin" else "vet"
    if not await tx.has_vet(vet):
        raise BadRequest(f"{vet_field}: unknown vet {vet!r}", vet_field)
    type_id = ev.data.get("type")
    booked = ev.data.get("booked_min")
    if type_id is not None:
        known = await tx.booked_length(type_id)
        if known is None:
            if booked is None:
                raise BadRequest(f"appointment.type: unknown type {type_id!r}", "appointment.type")
            # A type the schedule never named: keep it, so what we learn stays per type.
            await tx.save_appointment_type(type_id, type_id, booked)
        else:
            booked = booked or known
    if booked is None:
        booked = ev.data.get("expected_min") or (45.0 if ev.type == "emergency" else 20.0)
    day = ev.at.astimezone(tz).date()
    cap = max_visits_per_day((await tx.clinic()).settings)
    if await tx.count_visits(day) >= cap:
        raise TooLarge(f"{ev.type}: today already holds {cap} visits, the most this clinic takes "
                       "(clinic setting max_visits_per_day); see reception", field_name)
    kind: VisitKind = "walkin" if ev.type == "walkin" else "emergency"
    await tx.add_arrived_visit(Visit(ev.appointment, kind, vet, type_id, booked, arrived=ev.at,
                                     expected_min=ev.data.get("expected_min"), pet=ev.data.get("pet")), day)


# -- a client's own changes (the reschedule link) ---------------------------------------------


async def _client_change(tx: Tx, ev: Event, tz: tzinfo, now: datetime) -> None:
    """reschedule {vet, scheduled}: the visit becomes 'cancelled' and a new booked appointment
    (same pet, type and booked length) takes the slot; its id goes in `data["new_id"]`.
    cancel_visit {}: the visit becomes 'cancelled'.
    reschedule_request {vet, scheduled, body, number}: nothing moves; reception's inbox gets
    the request (the notifier's inbound table, kind 'reschedule').
    Each records the pet's name (`data["pet"]`) for reception's Recent actions."""
    found = await _visit(tx, ev.appointment)
    assert ev.appointment is not None
    if found.status not in ("booked", "waiting"):
        raise Conflict(f"{ev.type}: the visit is {found.status}; only a visit not yet started can change",
                       "appointment")
    ev.data.setdefault("pet", found.visit.pet)
    ev.data["from_status"] = found.status
    if ev.type == "cancel_visit":
        await tx.set_visit_status(ev.appointment, "cancelled")
        return
    vet = ev.data["vet"]
    if not await tx.has_vet(vet):
        raise BadRequest(f"vet: unknown vet {vet!r}", "vet")
    scheduled = _time(ev.data["scheduled"])
    assert scheduled is not None
    if ev.type == "reschedule_request":
        await tx.add_reschedule_request(f"web:{ev.data['request']}", ev.data.get("number") or "", ev.data["body"],
                                        ev.appointment, now)
        return
    n = 1
    while await tx.visit(f"{ev.appointment}-r{n}") is not None:
        n += 1
    new_id = f"{ev.appointment}-r{n}"
    old = found.visit
    ev.data.update(new_id=new_id, from_vet=old.vet,
                   from_scheduled=old.scheduled.isoformat() if old.scheduled else None)
    await tx.set_visit_status(ev.appointment, "cancelled")
    await tx.book_again(ev.appointment, new_id, vet, scheduled, scheduled.astimezone(tz).date())


# -- reception's overrides and their undo ---------------------------------------------------


async def _override(tx: Tx, ev: Event, actor: str, now: datetime) -> None:
    """Apply one override; records in `ev.data` what an undo needs to put things back."""
    if ev.type == "move":
        found = await _visit(tx, ev.appointment)
        assert ev.appointment is not None
        if found.status not in ("booked", "waiting"):
            raise Conflict(f"move: the visit is {found.status}; only a visit not yet started can move", "vet")
        vet = ev.data["vet"]
        if not await tx.has_vet(vet):
            raise BadRequest(f"vet: unknown vet {vet!r}", "vet")
        if vet == found.visit.vet:
            raise Conflict("move: the visit is already with that vet", "vet")
        ev.data.update(from_vet=found.visit.vet, previous_priority=found.visit.priority)
        # Its place in the old vet's line means nothing in the new one: ordinary order there.
        await tx.move_visit(ev.appointment, vet, None)
    elif ev.type == "reorder":
        new: dict[str, float | None] = ev.data["priorities"]
        previous: dict[str, float | None] = {}
        for vid, prio in new.items():
            previous[vid] = (await _visit(tx, vid)).visit.priority
            await tx.set_visit_priority(vid, prio)
        ev.data["previous"] = previous
    elif ev.type in ("pause_texts", "resume_texts"):
        client = ev.data.get("client")
        ev.data["was_paused"] = await tx.texts_paused_for(client)
        if ev.type == "pause_texts":
            await tx.pause_texts(client, ev.at, actor)
        else:
            await tx.resume_texts(client)
    elif ev.type == "in_car":
        found = await _visit(tx, ev.appointment)
        assert ev.appointment is not None
        if found.status != "waiting":
            raise Conflict("in_car: only a checked-in client still waiting can wait in the car", "appointment")
        await tx.wait_in_car(ev.appointment, ev.at)
    elif ev.type == "ack":
        if "seq" in ev.data and ((seq := posted_seq(ev.data["seq"])) is None or await tx.event(seq) is None):
            raise NotFound(f"no event {ev.data['seq']}", "seq")
    elif ev.type == "report_note":
        await _visit(tx, ev.appointment)  # a note on a visit that exists
    elif ev.type == "undo":
        await _undo(tx, ev)
    # send_text: the caller queued the text (notifier.outbox) in this same transaction.


async def _visit(tx: Tx, vid: str | None) -> StoredVisit:
    found = await tx.visit(vid) if vid is not None else None
    if found is None:
        raise AppointmentNotFound(str(vid))
    return found


def posted_seq(value: object) -> int | None:
    """An event's sequence number as the console posts it (a number, or its digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


async def undone_seqs(tx: Tx) -> set[int]:
    """Sequence numbers of events taken back by an `undo` (an undo itself cannot be undone)."""
    return await tx.undone_seqs()


# What undoing each visit event puts back: the status it left the visit in, and how.
_BACK = {
    "checkin": "waiting", "start": "in_consult", "emergency_start": "in_consult", "end": "done",
    "emergency_end": "done", "noshow": "noshow", "walkin": "waiting", "emergency": "waiting",
}


async def _undo(tx: Tx, ev: Event) -> None:
    seq = posted_seq(ev.data.get("seq"))
    target = await tx.event(seq) if seq is not None else None
    if target is None:
        raise NotFound(f"no event {seq}", "seq")
    kind, vid, data = target.type, target.appointment, target.data
    if kind not in UNDOABLE:
        raise Conflict(f"undo: a {kind} event cannot be undone", "seq")
    undone = await tx.undone_seqs()
    if seq in undone:
        raise Conflict("undo: already undone", "seq")
    ev.appointment, ev.data["type"] = vid, kind
    # Undo only the latest change to a visit (or to a vet's availability, or a vet's line):
    # taking back an earlier one would leave the later ones describing a state that never was.
    for r in await tx.events_since(target.seq):
        if r.seq in undone or r.type in _STATELESS:
            continue
        same_visit = vid is not None and r.appointment == vid
        same_vet = kind in VET_EVENTS and r.type in VET_EVENTS and r.data.get("vet") == data.get("vet")
        same_line = kind == "reorder" and r.type == "reorder" and r.data.get("vet") == data.get("vet")
        if same_visit or same_vet or same_line:
            raise Conflict(f"undo: a later change ({r.type}) depends on it; undo that first", "seq")
    if kind in TRANSITIONS or kind in CREATING:
        assert vid is not None
        status = (await _visit(tx, vid)).status
        if status != _BACK[kind]:
            raise Conflict(f"undo: the visit is {status} now", "seq")
        await tx.undo_visit_event(vid, kind)
    elif kind in VET_EVENTS:
        await tx.set_vet_unavailable_until(data["vet"], _time(data.get("previous_until")))
    elif kind == "move":
        assert vid is not None
        await tx.move_visit(vid, data["from_vet"], data.get("previous_priority"))
    elif kind == "reorder":
        for v, prio in data.get("previous", {}).items():
            await tx.set_visit_priority(v, prio)
    elif kind in ("pause_texts", "resume_texts"):
        # A pause of what was already paused (or a resume of what was running) changed nothing.
        changed = bool(data.get("was_paused")) != (kind == "pause_texts")
        if changed and kind == "pause_texts":
            await tx.resume_texts(data.get("client"))
        elif changed:
            await tx.pause_texts(data.get("client"), ev.at, "undo")
    elif kind == "send_text" and data.get("outbox_id") is not None:
        # A text already handed to the provider cannot be called back; one still queued can.
        if not await tx.cancel_queued_text(data["outbox_id"], ev.at, "cancelled by reception"):
            raise Conflict("undo: the text has already gone out", "seq")
    elif kind == "in_car":
        assert vid is not None
        await tx.stop_waiting_in_car(vid)
    elif kind == "ack" and data.get("inbound") is not None:
        await tx.reopen_inbound(data["inbound"])
    elif kind == "ack" and data.get("recovery") is not None:
        await tx.forget_recovery_offer(data["recovery"])
