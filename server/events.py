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

from server.errors import AppointmentNotFound, BadRequest, Conflict, NotFound, TooLarge
from server.hours import EVENT_WINDOW, max_visits_per_day
from server.store import fetch
from server.timeutil import from_db, parse_time, to_db, within

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
OVERRIDES = ("move", "reorder", "pause_texts", "resume_texts", "send_text", "in_car", "ack", "undo")
UNDOABLE = (*TRANSITIONS, *CREATING, *VET_EVENTS, *OVERRIDES[:-1])
# A client's own changes through the signed reschedule link (server/web/reschedule.py builds
# these; not in the JSON API): move the booking, cancel it, or ask reception to move it.
CLIENT_CHANGES = ("reschedule", "cancel_visit", "reschedule_request")
# Events that change no visit's state: they never stop an earlier event being undone.
_STATELESS = ("send_text", "in_car", "ack", "undo", "pause_texts", "resume_texts", "consent", "kiosk_unmatched",
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
        # Kept in the log so an undo can put back what was in force before.
        prev = await fetch(conn, "SELECT unavailable_until FROM vet_status WHERE vet_id = ?", (vet,))
        ev.data["previous_until"] = prev[0][0] if prev else None
        await conn.execute(
            "INSERT INTO vet_status (vet_id, unavailable_until) VALUES (?, ?) ON CONFLICT (vet_id) "
            "DO UPDATE SET unavailable_until = excluded.unavailable_until",
            (vet, ev.data.get("until")),
        )
    elif ev.type in OVERRIDES:
        await _override(conn, ev, actor, now)
    elif ev.type in CLIENT_CHANGES:
        await _client_change(conn, ev, tz, now)
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
    day = ev.at.astimezone(tz).date().isoformat()
    settings = await fetch(conn, "SELECT settings FROM clinic WHERE id = 1")
    cap = max_visits_per_day(json.loads(settings[0][0]) if settings and settings[0][0] else {})
    if (await fetch(conn, "SELECT COUNT(*) FROM appointments WHERE day = ? AND status != 'cancelled'",
                    (day,)))[0][0] >= cap:
        raise TooLarge(f"{ev.type}: today already holds {cap} visits, the most this clinic takes "
                       "(clinic setting max_visits_per_day); see reception", field_name)
    await conn.execute(
        "INSERT INTO appointments (id, kind, day, vet_id, type_id, pet_name, booked_min, expected_min, "
        "status, arrived) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'waiting', ?)",
        (ev.appointment, ev.type, day, vet, type_id,
         ev.data.get("pet"), booked, ev.data.get("expected_min"), to_db(ev.at)),
    )


# -- a client's own changes (the reschedule link) ---------------------------------------------


async def _client_change(conn: aiosqlite.Connection, ev: Event, tz: tzinfo, now: datetime) -> None:
    """reschedule {vet, scheduled}: the visit becomes 'cancelled' and a new booked appointment
    (same pet, type and booked length) takes the slot; its id goes in `data["new_id"]`.
    cancel_visit {}: the visit becomes 'cancelled'.
    reschedule_request {vet, scheduled, body, number}: nothing moves; reception's inbox gets
    the request (the notifier's inbound table, kind 'reschedule')."""
    row = await _visit_row(conn, ev.appointment)
    if row["status"] not in ("booked", "waiting"):
        raise Conflict(f"{ev.type}: the visit is {row['status']}; only a visit not yet started can change",
                       "appointment")
    if ev.type == "cancel_visit":
        await conn.execute("UPDATE appointments SET status = 'cancelled' WHERE id = ?", (ev.appointment,))
        return
    vet = ev.data["vet"]
    if not await fetch(conn, "SELECT 1 FROM vets WHERE id = ?", (vet,)):
        raise BadRequest(f"vet: unknown vet {vet!r}", "vet")
    scheduled = from_db(ev.data["scheduled"])
    assert scheduled is not None
    if ev.type == "reschedule_request":
        await conn.execute(
            "INSERT INTO inbound_messages (provider_sid, from_number, body, kind, visit_id, needs_reception, "
            "received_at) VALUES (?, ?, ?, 'reschedule', ?, 1, ?)",
            (f"web:{ev.data['request']}", ev.data.get("number") or "", ev.data["body"], ev.appointment, to_db(now)))
        return
    n = 1
    while await fetch(conn, "SELECT 1 FROM appointments WHERE id = ?", (f"{ev.appointment}-r{n}",)):
        n += 1
    new_id = f"{ev.appointment}-r{n}"
    ev.data.update(new_id=new_id, from_vet=row["vet_id"], from_scheduled=row["scheduled"],
                   from_status=row["status"])
    await conn.execute("UPDATE appointments SET status = 'cancelled' WHERE id = ?", (ev.appointment,))
    await conn.execute(
        "INSERT INTO appointments (id, kind, day, vet_id, type_id, pet_id, pet_name, scheduled, booked_min, "
        "status) VALUES (?, 'appointment', ?, ?, ?, ?, ?, ?, ?, 'booked')",
        (new_id, scheduled.astimezone(tz).date().isoformat(), vet, row["type_id"], row["pet_id"], row["pet_name"],
         to_db(scheduled), row["booked_min"]))


# -- reception's overrides and their undo ---------------------------------------------------


async def _override(conn: aiosqlite.Connection, ev: Event, actor: str, now: datetime) -> None:
    """Apply one override; records in `ev.data` what an undo needs to put things back."""
    if ev.type == "move":
        row = await _visit_row(conn, ev.appointment)
        if row["status"] not in ("booked", "waiting"):
            raise Conflict(f"move: the visit is {row['status']}; only a visit not yet started can move", "vet")
        vet = ev.data["vet"]
        if not await fetch(conn, "SELECT 1 FROM vets WHERE id = ?", (vet,)):
            raise BadRequest(f"vet: unknown vet {vet!r}", "vet")
        if vet == row["vet_id"]:
            raise Conflict("move: the visit is already with that vet", "vet")
        ev.data.update(from_vet=row["vet_id"], previous_priority=row["priority"])
        # Its place in the old vet's line means nothing in the new one: ordinary order there.
        await conn.execute("UPDATE appointments SET vet_id = ?, priority = NULL WHERE id = ?", (vet, ev.appointment))
    elif ev.type == "reorder":
        new: dict[str, float | None] = ev.data["priorities"]
        previous: dict[str, float | None] = {}
        for vid, prio in new.items():
            row = await _visit_row(conn, vid)
            previous[vid] = row["priority"]
            await conn.execute("UPDATE appointments SET priority = ? WHERE id = ?", (prio, vid))
        ev.data["previous"] = previous
    elif ev.type in ("pause_texts", "resume_texts"):
        client = ev.data.get("client")
        scope, cid = ("client", client) if client else ("clinic", "")
        was = await fetch(conn, "SELECT paused_at, paused_by FROM texts_paused WHERE scope = ? AND client_id = ?",
                          (scope, cid))
        ev.data["was_paused"] = bool(was)
        if ev.type == "pause_texts":
            await conn.execute("INSERT OR IGNORE INTO texts_paused (scope, client_id, paused_at, paused_by) "
                               "VALUES (?, ?, ?, ?)", (scope, cid, to_db(ev.at), actor))
        else:
            await conn.execute("DELETE FROM texts_paused WHERE scope = ? AND client_id = ?", (scope, cid))
    elif ev.type == "in_car":
        row = await _visit_row(conn, ev.appointment)
        if row["status"] != "waiting":
            raise Conflict("in_car: only a checked-in client still waiting can wait in the car", "appointment")
        await conn.execute("INSERT OR IGNORE INTO waiting_in_car (visit_id, since) VALUES (?, ?)",
                           (ev.appointment, to_db(ev.at)))
    elif ev.type == "ack":
        if "seq" in ev.data and not await fetch(conn, "SELECT 1 FROM events WHERE seq = ?", (ev.data["seq"],)):
            raise NotFound(f"no event {ev.data['seq']}", "seq")
    elif ev.type == "undo":
        await _undo(conn, ev)
    # send_text: the caller queued the text (notifier.outbox) in this same transaction.


async def _visit_row(conn: aiosqlite.Connection, vid: str | None) -> aiosqlite.Row:
    rows = await fetch(conn, "SELECT * FROM appointments WHERE id = ?", (vid,))
    if not rows or vid is None:
        raise AppointmentNotFound(str(vid))
    return rows[0]


async def undone_seqs(conn: aiosqlite.Connection) -> set[int]:
    """Sequence numbers of events taken back by an `undo` (an undo itself cannot be undone)."""
    rows = await fetch(conn, "SELECT data FROM events WHERE type = 'undo'")
    return {int(json.loads(r[0])["seq"]) for r in rows}


async def _undo(conn: aiosqlite.Connection, ev: Event) -> None:
    seq = ev.data.get("seq")
    rows = await fetch(conn, "SELECT seq, type, appointment_id, data FROM events WHERE seq = ?", (seq,))
    if not rows:
        raise NotFound(f"no event {seq}", "seq")
    kind, vid, data = rows[0]["type"], rows[0]["appointment_id"], json.loads(rows[0]["data"])
    if kind not in UNDOABLE:
        raise Conflict(f"undo: a {kind} event cannot be undone", "seq")
    undone = await undone_seqs(conn)
    if seq in undone:
        raise Conflict("undo: already undone", "seq")
    ev.appointment, ev.data["type"] = vid, kind
    # Undo only the latest change to a visit (or to a vet's availability, or a vet's line):
    # taking back an earlier one would leave the later ones describing a state that never was.
    later = await fetch(conn, "SELECT seq, type, appointment_id, data FROM events WHERE seq > ?", (seq,))
    for r in later:
        if r["seq"] in undone or r["type"] in _STATELESS:
            continue
        same_visit = vid is not None and r["appointment_id"] == vid
        same_vet = (kind in VET_EVENTS and r["type"] in VET_EVENTS
                    and json.loads(r["data"]).get("vet") == data.get("vet"))
        same_line = kind == "reorder" and r["type"] == "reorder" and json.loads(r["data"]).get("vet") == data.get("vet")
        if same_visit or same_vet or same_line:
            raise Conflict(f"undo: a later change ({r['type']}) depends on it; undo that first", "seq")
    if kind in TRANSITIONS or kind in CREATING:
        row = await _visit_row(conn, vid)
        status = row["status"]
        back: dict[str, tuple[str, str]] = {
            # event: (the status it left the visit in, the SQL that puts it back)
            "checkin": ("waiting", "status = 'booked', arrived = NULL"),
            "start": ("in_consult", "status = 'waiting', started = NULL"),
            "emergency_start": ("in_consult", "status = 'waiting', started = NULL"),
            "end": ("done", "status = 'in_consult', ended = NULL"),
            "emergency_end": ("done", "status = 'in_consult', ended = NULL"),
            "noshow": ("noshow", "status = CASE WHEN arrived IS NULL THEN 'booked' ELSE 'waiting' END"),
            "walkin": ("waiting", "status = 'cancelled'"),
            "emergency": ("waiting", "status = 'cancelled'"),
        }
        expected, sql = back[kind]
        if status != expected:
            raise Conflict(f"undo: the visit is {status} now", "seq")
        await conn.execute(f"UPDATE appointments SET {sql} WHERE id = ?", (vid,))
    elif kind in VET_EVENTS:
        await conn.execute("UPDATE vet_status SET unavailable_until = ? WHERE vet_id = ?",
                           (data.get("previous_until"), data["vet"]))
    elif kind == "move":
        await conn.execute("UPDATE appointments SET vet_id = ?, priority = ? WHERE id = ?",
                           (data["from_vet"], data.get("previous_priority"), vid))
    elif kind == "reorder":
        for v, prio in data.get("previous", {}).items():
            await conn.execute("UPDATE appointments SET priority = ? WHERE id = ?", (prio, v))
    elif kind in ("pause_texts", "resume_texts"):
        # A pause of what was already paused (or a resume of what was running) changed nothing.
        changed = bool(data.get("was_paused")) != (kind == "pause_texts")
        client = data.get("client")
        scope, cid = ("client", client) if client else ("clinic", "")
        if changed and kind == "pause_texts":
            await conn.execute("DELETE FROM texts_paused WHERE scope = ? AND client_id = ?", (scope, cid))
        elif changed:
            await conn.execute("INSERT OR IGNORE INTO texts_paused (scope, client_id, paused_at, paused_by) "
                               "VALUES (?, ?, ?, 'undo')", (scope, cid, to_db(ev.at)))
    elif kind == "send_text" and data.get("outbox_id") is not None:
        # A text already handed to the provider cannot be called back; one still queued can.
        cur = await conn.execute(
            "UPDATE outbox SET status = 'failed', error_message = 'cancelled by reception', updated_at = ? "
            "WHERE id = ? AND status = 'queued'", (to_db(ev.at), data["outbox_id"]))
        if cur.rowcount == 0:
            raise Conflict("undo: the text has already gone out", "seq")
    elif kind == "in_car":
        await conn.execute("DELETE FROM waiting_in_car WHERE visit_id = ?", (vid,))
    elif kind == "ack" and data.get("inbound") is not None:
        await conn.execute("UPDATE inbound_messages SET handled_at = NULL WHERE id = ?", (data["inbound"],))
    elif kind == "ack" and data.get("recovery") is not None:
        await conn.execute("DELETE FROM recovery_offers WHERE visit_id = ?", (data["recovery"],))
