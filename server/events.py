"""Events: validated, checked against the visit's state, appended to the log.

`apply_event` is the one function that changes what happened today; the API, the kiosk
routes, the console and the replay all call it inside `Store.transaction()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

import aiosqlite

from server.errors import AppointmentNotFound, BadRequest, Conflict, NotFound
from server.store import fetch
from server.timeutil import from_db, parse_time, to_db

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
    at = parse_time(body["at"], tz, "at") if body.get("at") is not None else now
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
        if (minutes is None) == (until is None):
            raise BadRequest("minutes: give either minutes or until", "minutes")
        if until is None:
            assert minutes is not None
            until = at + timedelta(minutes=minutes)
        return Event(kind, at, None, {"vet": _need_str(body, "vet", "vet"), "until": to_db(until),
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


async def apply_event(conn: aiosqlite.Connection, ev: Event, actor: str, tz: tzinfo, now: datetime) -> int:
    """Check the event against the visit's state, update the visit, append to the log.

    Must run inside `Store.transaction()`. Returns the event's sequence number.
    """
    if ev.type in TRANSITIONS:
        await _transition(conn, ev)
    elif ev.type in CREATING:
        await _create_visit(conn, ev, tz)
    elif ev.type in VET_EVENTS:
        vet = ev.data["vet"]
        if not await fetch(conn, "SELECT 1 FROM vets WHERE id = ?", (vet,)):
            raise BadRequest(f"vet: unknown vet {vet!r}", "vet")
        await conn.execute(
            "INSERT INTO vet_status (vet_id, unavailable_until) VALUES (?, ?) ON CONFLICT (vet_id) "
            "DO UPDATE SET unavailable_until = excluded.unavailable_until",
            (vet, ev.data.get("until")),
        )
    cur = await conn.execute(
        "INSERT INTO events (at, recorded_at, type, appointment_id, data, actor) VALUES (?, ?, ?, ?, ?, ?)",
        (to_db(ev.at), to_db(now), ev.type, ev.appointment, json.dumps(ev.data), actor),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


async def _transition(conn: aiosqlite.Connection, ev: Event) -> None:
    assert ev.appointment is not None
    rows = await fetch(conn,
        "SELECT kind, status, arrived, started FROM appointments WHERE id = ?", (ev.appointment,)
    )
    field_name = "id" if ev.type.startswith("emergency") else "appointment"
    if not rows:
        if ev.type.startswith("emergency"):
            raise NotFound(f"unknown emergency {ev.appointment!r}", field_name)
        raise AppointmentNotFound(ev.appointment)
    kind, status, arrived, started = rows[0]
    is_emergency = kind == "emergency"
    if is_emergency != ev.type.startswith("emergency"):
        what = "an emergency" if is_emergency else "not an emergency"
        raise Conflict(f"{ev.appointment!r} is {what}: use the matching event type", field_name)
    if ev.type == "checkin" and kind != "appointment":
        raise Conflict(f"{ev.appointment!r} is a {kind}, already checked in", field_name)
    allowed, new_status = TRANSITIONS[ev.type]
    if status not in allowed:
        raise Conflict(_why(ev.type, status), field_name)
    at = to_db(ev.at)
    if new_status == "waiting":
        await conn.execute("UPDATE appointments SET status = ?, arrived = ? WHERE id = ?",
                           (new_status, at, ev.appointment))
    elif new_status == "in_consult":
        # Called in without a kiosk check-in: the client was there when the consult began.
        await conn.execute(
            "UPDATE appointments SET status = ?, started = ?, arrived = COALESCE(arrived, ?) WHERE id = ?",
            (new_status, at, at, ev.appointment),
        )
    elif new_status == "done":
        start = from_db(started)
        if start is not None and ev.at < start:
            raise Conflict("end: before the consult started", "at")
        await conn.execute("UPDATE appointments SET status = ?, ended = ? WHERE id = ?",
                           (new_status, at, ev.appointment))
    else:
        await conn.execute("UPDATE appointments SET status = ? WHERE id = ?", (new_status, ev.appointment))


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


async def _create_visit(conn: aiosqlite.Connection, ev: Event, tz: tzinfo) -> None:
    assert ev.appointment is not None
    field_name = "appointment.id" if ev.type == "walkin" else "id"
    if await fetch(conn, "SELECT 1 FROM appointments WHERE id = ?", (ev.appointment,)):
        raise Conflict(f"{ev.type}: {ev.appointment!r} exists already", field_name)
    vet = ev.data["vet"]
    vet_field = "appointment.vet" if ev.type == "walkin" else "vet"
    if not await fetch(conn, "SELECT 1 FROM vets WHERE id = ?", (vet,)):
        raise BadRequest(f"{vet_field}: unknown vet {vet!r}", vet_field)
    type_id = ev.data.get("type")
    booked = ev.data.get("booked_min")
    if type_id is not None:
        rows = await fetch(conn, "SELECT booked_min FROM appointment_types WHERE id = ?", (type_id,))
        if not rows:
            if booked is None:
                raise BadRequest(f"appointment.type: unknown type {type_id!r}", "appointment.type")
            # A type the schedule never named: keep it, so what we learn stays per type.
            await conn.execute("INSERT INTO appointment_types (id, name, booked_min) VALUES (?, ?, ?)",
                               (type_id, type_id, booked))
        else:
            booked = booked or float(rows[0][0])
    if booked is None:
        booked = ev.data.get("expected_min") or (45.0 if ev.type == "emergency" else 20.0)
    await conn.execute(
        "INSERT INTO appointments (id, kind, day, vet_id, type_id, pet_name, booked_min, expected_min, "
        "status, arrived) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'waiting', ?)",
        (ev.appointment, ev.type, ev.at.astimezone(tz).date().isoformat(), vet, type_id,
         ev.data.get("pet"), booked, ev.data.get("expected_min"), to_db(ev.at)),
    )
