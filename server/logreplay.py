"""A clinic's event log replayed from an empty state (issue 13 item 4: `waitroom db copy` checks
its copy by replaying the log on both sides and comparing what results).

What the log can reproduce: it is every accepted change of the clinic's days, in order, but not
the schedule itself (a `schedule_import` event keeps counts only) nor history loaded in bulk.
So the replay starts from the bookings the log names, put back as booked (each with the vet it
had before the log's first move), in an empty in-memory store, and applies every event through
`server.events.apply_event`, the function the API, the console and the replay protocol use.
What results is the course of those days: each visit's status, arrival, start and end times,
vet and priority, each vet's away-until, texts paused, clients waiting in the car, which
events were undone and which the rules refuse; and, for the events that name a text or a reply
(sent by reception, decided on, acknowledged), that text as the side stores it.

Events are numbered by their place in the log (1 = the oldest): generated ids differ between
two databases that hold the same clinic, places do not.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, time, tzinfo
from typing import Any

from server.errors import WaitroomError
from server.events import Event, apply_event, posted_seq
from server.store import LoggedEvent, SqliteStore, Tx
from server.store.interface import BookedVisit

# Event data keys naming a row of another table by its generated id.
_TEXT_KEYS = ("outbox", "outbox_id")
_INBOUND_KEYS = ("inbound",)
# Undo and acknowledgement name an earlier event by its seq.
_SEQ_EVENTS = ("undo", "ack")


@dataclass
class Outcome:
    """What replaying one side's log produced."""

    log: list[LoggedEvent]
    # visit id: (kind, status, vet, arrived, started, ended, priority)
    visits: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    away_until: dict[str, datetime | None] = field(default_factory=dict)
    paused: tuple[bool, frozenset[str]] = (False, frozenset())
    in_car: frozenset[str] = frozenset()
    undone: frozenset[int] = frozenset()  # places in the log
    refused: dict[int, str] = field(default_factory=dict)  # place: why the rules refuse it
    texts: dict[int, tuple[Any, ...]] = field(default_factory=dict)  # place: the text/reply it names


_VISIT_FIELDS = ("kind", "status", "vet", "arrived", "started", "ended", "priority")


async def replay_log(reader: Tx) -> Outcome:
    """Replay the clinic's event log (read through `reader`) from an empty state."""
    clinic = await reader.clinic()
    tz = clinic.tz
    log = await reader.events_since(0)
    out = Outcome(log)
    created: set[str] = set()
    named: list[str] = []
    first_vet: dict[str, str] = {}
    for place, e in enumerate(log, 1):
        if e.type in ("walkin", "emergency") and e.appointment:
            created.add(e.appointment)
        if e.type == "reschedule" and isinstance(e.data.get("new_id"), str):
            created.add(e.data["new_id"])
        if e.type in ("move", "reschedule") and e.appointment and isinstance(e.data.get("from_vet"), str):
            first_vet.setdefault(e.appointment, e.data["from_vet"])
        ids = [e.appointment] if e.appointment else []
        if e.type == "reorder" and isinstance(e.data.get("priorities"), dict):
            ids += [str(k) for k in e.data["priorities"]]
        named += [i for i in ids if i not in named]
        for key in (*_TEXT_KEYS, *_INBOUND_KEYS):
            ref = e.data.get(key)
            if isinstance(ref, int) and not isinstance(ref, bool):
                out.texts[place] = (*out.texts.get(place, ()), key, *await _row(reader, key, ref))

    scratch = await SqliteStore.open(":memory:")
    try:
        async with scratch.transaction() as tx:
            await tx.set_clinic(clinic)
            vets = await reader.vet_names()
            for vet_id, name in vets.items():
                await tx.save_vet(vet_id, name)
            for type_id, minutes in (await reader.booked_lengths()).items():
                await tx.save_appointment_type(type_id, type_id, minutes)
            for vid in named:
                if vid in created:
                    continue
                found = await reader.visit(vid)
                if found is None:
                    continue  # the replay refuses its events, as the rules would
                v = found.visit
                vet = first_vet.get(vid, v.vet)
                if vet not in vets:
                    await tx.save_vet(vet, vet)
                if v.type is not None and await tx.booked_length(v.type) is None:
                    await tx.save_appointment_type(v.type, v.type, v.booked_min)
                if v.kind == "appointment":
                    scheduled = v.scheduled or datetime.combine(found.day, time(0), tz)
                    await tx.save_bookings([BookedVisit(vid, found.day, vet, v.type, None, v.pet or "pet",
                                                        scheduled, v.booked_min)])
                else:  # a walk-in or emergency of a day the log does not create it in
                    await tx.add_arrived_visit(v, found.day)
        seqs: dict[int, int] = {}
        for place, e in enumerate(log, 1):
            data = copy.deepcopy(e.data)
            if e.type in _SEQ_EVENTS and "seq" in data:
                old = posted_seq(data["seq"])
                data["seq"] = seqs.get(old, 0) if old is not None else data["seq"]
            try:
                async with scratch.transaction() as tx:
                    seqs[e.seq] = await apply_event(tx, Event(e.type, e.at, e.appointment, data), e.actor, tz,
                                                    e.recorded_at)
            except WaitroomError as err:
                out.refused[place] = err.message
            except (KeyError, TypeError, ValueError) as err:  # data the rules cannot read: refused too
                out.refused[place] = f"{type(err).__name__}: {err}"
        await _read_outcome(scratch, out, named, created, seqs)
    finally:
        await scratch.close()
    return out


async def _row(reader: Tx, key: str, ref: int) -> tuple[Any, ...]:
    if key in _TEXT_KEYS:
        row = await reader.outbox_row(ref)
        return (None,) if row is None else (row.dedupe_key, row.kind, row.visit_id, row.to_number, row.body,
                                            row.status)
    sender = await reader.inbound_sender(ref)
    return (None,) if sender is None else tuple(sender)


async def _read_outcome(scratch: SqliteStore, out: Outcome, named: list[str], created: set[str],
                        seqs: dict[int, int]) -> None:
    place_of = {new: place for place, e in enumerate(out.log, 1) if (new := seqs.get(e.seq)) is not None}
    async with scratch.read() as q:
        for vid in [*named, *sorted(created - set(named))]:
            found = await q.visit(vid)
            if found is not None:
                v = found.visit
                out.visits[vid] = (v.kind, found.status, v.vet, v.arrived, v.started, v.ended, v.priority)
        for vet in await q.vet_names():
            out.away_until[vet] = await q.vet_unavailable_until(vet)
        paused = await q.texts_paused()
        out.paused = (paused.clinic, paused.clients)
        out.in_car = frozenset(await q.visits_waiting_in_car())
        out.undone = frozenset(place_of[s] for s in await q.undone_seqs() if s in place_of)


def _event(log: list[LoggedEvent], place: int, tz: tzinfo | None) -> str:
    e = log[place - 1]
    what = f" of {e.appointment!r}" if e.appointment else ""
    return f"event {place} of the log ({e.type}{what} at {_show(e.at, tz)}, seq {e.seq} in the {{side}})"


def _last_event_on(log: list[LoggedEvent], vid: str) -> int | None:
    places = [p for p, e in enumerate(log, 1) if e.appointment == vid or (
        e.type == "reorder" and vid in (e.data.get("priorities") or {}))]
    return places[-1] if places else None


def first_difference(a: Outcome, b: Outcome, names: tuple[str, str] = ("source", "copy"),
                     tz: tzinfo | None = None) -> str | None:
    """The first thing the two replays disagree on, in words naming the event or visit
    (None: they agree). `a` is the side whose event numbers are quoted."""
    left, right = names

    def ev(place: int) -> str:
        return _event(a.log, place, tz).replace("{side}", left)

    if len(a.log) != len(b.log):
        return f"the {left}'s log holds {len(a.log)} events, the {right}'s {len(b.log)}"
    for place in sorted(set(a.refused) | set(b.refused)):
        if a.refused.get(place) != b.refused.get(place):
            said = {s: f"refused in the {s} ({o.refused[place]})" if place in o.refused else f"accepted in the {s}"
                    for s, o in ((left, a), (right, b))}
            return f"{ev(place)}: {said[left]}, {said[right]}"
    for vid in [*a.visits, *(v for v in b.visits if v not in a.visits)]:
        x, y = a.visits.get(vid), b.visits.get(vid)
        if x == y:
            continue
        last = _last_event_on(a.log, vid)
        by = f" (its last event: {ev(last)})" if last else ""
        if x is None or y is None:
            return f"visit {vid!r} results in the {left if x else right} only{by}"
        name, p, q = next((n, p, q) for n, p, q in zip(_VISIT_FIELDS, x, y, strict=True) if p != q)
        return f"visit {vid!r}: {name} {_show(p, tz)} in the {left}, {_show(q, tz)} in the {right}{by}"
    for vet in sorted(set(a.away_until) | set(b.away_until)):
        if a.away_until.get(vet) != b.away_until.get(vet):
            return (f"vet {vet!r} away until {_show(a.away_until.get(vet), tz)} in the {left}, "
                    f"{_show(b.away_until.get(vet), tz)} in the {right}")
    if a.paused != b.paused:
        return f"texts paused: {_paused(a.paused)} in the {left}, {_paused(b.paused)} in the {right}"
    if a.in_car != b.in_car:
        vid = sorted(a.in_car ^ b.in_car)[0]
        return f"visit {vid!r} waits in the car in the {left if vid in a.in_car else right} only"
    if a.undone != b.undone:
        place = sorted(a.undone ^ b.undone)[0]
        return f"{ev(place)}: undone in the {left if place in a.undone else right} only"
    for place in sorted(set(a.texts) | set(b.texts)):
        if a.texts.get(place) != b.texts.get(place):
            return (f"{ev(place)} names a text or reply that reads {a.texts.get(place)} in the {left}, "
                    f"{b.texts.get(place)} in the {right}")
    return None


def _show(value: object, tz: tzinfo | None) -> str:
    if isinstance(value, datetime):
        return value.astimezone(tz).isoformat() if tz else value.isoformat()
    return repr(value)


def _paused(p: tuple[bool, frozenset[str]]) -> str:
    return "every text" if p[0] else (", ".join(sorted(p[1])) or "none")
