"""The sync core shared by every practice-management connector (ezyVet, Provet Cloud).

A connector turns its system's appointments into `Booking`s; this module does the rest, the
same way for both:

- `apply_bookings` puts them into the day through the schedule import every other path uses
  (server/schedule.py: upserted by id, "a re-push moves a booking that has not happened yet; it
  never rewrites what happened"), cancels here what the practice system cancelled or deleted
  while it is still only booked, and records one `schedule_import` event (and a `pms_cancel`
  per cancelled visit) in the same transaction. A booking the store refuses (a bad time) is
  left out and named, not the whole sync; a sync over the day's cap changes nothing.
- `queue_write_backs` turns our own events (a kiosk check-in, a consult start, a client's
  cancel or reschedule by link) into rows of the `pms_outbox`, exactly once each (dedupe key =
  event seq and action), in a transaction with the cursor that says how far it read.
- `drain_write_backs` sends the due rows through the connector, retrying with backoff like the
  text outbox; after `MAX_WRITE_ATTEMPTS` a row is `failed` and shown to reception, and what
  the API cannot do is a `task` for reception from the start.

Ids: everything a connector imports is named `<pms>:<kind>-<id>` (appointments `<pms>:<id>`), so
two systems, or a system and a CSV import, never share an id, and the practice system's own id
is always recoverable for the write-back.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from server.errors import BadRequest, TooLarge
from server.events import Event, apply_event
from server.hours import max_visits_per_day
from server.phones import PhoneError, normalise
from server.schedule import import_schedule
from server.store import Clinic, Store, Tx
from server.store.pms import NewPmsWrite, PmsSyncState, PmsWrite

log = logging.getLogger("waitroom.connectors")

WRITE_BACK_EVENTS = ("checkin", "start", "cancel_visit", "reschedule", "undo")
_UNDONE = {"checkin": "unarrived", "start": "unstarted"}  # reception took back an arrival, a start
MAX_WRITE_ATTEMPTS = 8
WRITE_BACKOFF_S = (10, 30, 60, 120, 300, 600, 900)
_OURS = re.compile(r"-r\d+$")  # a client's reschedule made the new booking here: not the PMS's


@dataclass(slots=True)
class Booking:
    """One appointment as a practice system has it, in waitroom's terms (ids not yet prefixed)."""

    id: str
    scheduled: datetime  # aware
    booked_min: float
    vet_id: str
    vet_name: str
    type_id: str | None = None
    type_name: str | None = None
    client_id: str | None = None
    client_name: str | None = None
    mobile: str | None = None
    sms_consent: bool = False  # the practice system records consent to texts (else the kiosk asks)
    language: str | None = None  # "en" / "es" when the practice system says
    pet_id: str | None = None
    pet_name: str | None = None
    species: str | None = None
    sex: str | None = None
    cancelled: bool = False  # cancelled or deleted in the practice system
    arrived: bool = False  # checked in there (reception's desk): waiting or in consultation


@dataclass(slots=True)
class SyncResult:
    """What one sync did, for the console and the CLI."""

    fetched: int = 0
    imported: int = 0
    cancelled: int = 0
    arrived: int = 0  # checked in here because the practice system says the client arrived
    kept: list[str] = field(default_factory=list)  # cancelled there, but already arrived here
    skipped: list[str] = field(default_factory=list)  # refused by the store, with why
    requests: int = 0

    def summary(self) -> str:
        parts = [f"{self.fetched} fetched", f"{self.imported} imported", f"{self.cancelled} cancelled"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.arrived:
            parts.append(f"{self.arrived} arrived (checked in there)")
        if self.kept:
            parts.append(f"{len(self.kept)} cancelled there but already here")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    status: str  # "sent" or "task"
    message: str = ""


class Connector(Protocol):
    """What a practice system's connector provides (server/connectors/ezyvet.py, provet.py)."""

    name: str  # "ezyvet", "provet"
    label: str  # "ezyVet", "Provet Cloud"

    async def fetch_window(self, first: datetime, last: datetime) -> list[Booking]:
        """Every appointment starting in [first, last), cancelled and deleted ones included
        where the API lists them. Raises ConnectorError when the listing cannot be completed."""
        ...

    async def fetch_changes(self, cursor: str | None) -> tuple[list[Booking], str | None] | None:
        """Appointments changed since `cursor` and the next cursor; None when this system
        has no change feed (a full window sync is used instead)."""
        ...

    async def fetch_one(self, pms_id: str) -> Booking | None:
        """One appointment (a webhook named it); None when it was deleted."""
        ...

    async def write_back(self, pms_id: str, action: str, data: dict[str, Any]) -> WriteOutcome:
        """Tell the practice system about `action` (arrived, started, cancelled, rescheduled)."""
        ...

    def request_count(self) -> int: ...


def prefix(pms: str) -> str:
    return f"{pms}:"


def _pid(pms: str, kind: str, raw: str) -> str:
    return f"{pms}:{kind}-{raw}"


def bookings_doc(pms: str, bookings: Sequence[Booking], region: str) -> tuple[dict[str, Any], list[str]]:
    """The `POST /api/schedule` document of `bookings` (not cancelled ones), and notes on what
    was changed to fit (a mobile number that is no number is left out, not the booking)."""
    vets: dict[str, dict[str, Any]] = {}
    types: dict[str, dict[str, Any]] = {}
    clients: dict[str, dict[str, Any]] = {}
    pets: dict[str, dict[str, Any]] = {}
    appointments: list[dict[str, Any]] = []
    notes: list[str] = []
    lengths: dict[str, Counter[float]] = {}
    for b in bookings:
        if b.cancelled:
            continue
        vet = _pid(pms, "vet", b.vet_id)
        vets.setdefault(vet, {"id": vet, "name": (b.vet_name or b.vet_id)[:200]})
        item: dict[str, Any] = {"id": f"{pms}:{b.id}", "vet": vet, "scheduled": b.scheduled.isoformat(),
                                "booked_min": b.booked_min}
        if b.type_id is not None:
            tid = _pid(pms, "type", b.type_id)
            types.setdefault(tid, {"id": tid, "name": (b.type_name or b.type_id)[:200], "booked_min": b.booked_min})
            lengths.setdefault(tid, Counter())[b.booked_min] += 1
            item["type"] = tid
        client = None
        if b.client_id is not None:
            client = _pid(pms, "client", b.client_id)
            mobile = None
            if b.mobile:
                try:
                    mobile = normalise(b.mobile, region)
                except PhoneError:
                    notes.append(f"appointment {b.id}: the client's mobile is no phone number; imported without it")
            record: dict[str, Any] = {"id": client, "name": (b.client_name or b.client_id)[:200], "mobile": mobile,
                                      "sms_consent": bool(b.sms_consent and mobile)}
            if b.language in ("en", "es"):
                record["language"] = b.language
            clients.setdefault(client, record)
        if b.pet_id is not None:
            pet = _pid(pms, "pet", b.pet_id)
            pets.setdefault(pet, {"id": pet, "client": client, "name": (b.pet_name or b.pet_id)[:200],
                                  "species": (b.species or None) and b.species[:200], "sex": b.sex or "unknown"})
            item["pet"] = pet
        elif b.pet_name:
            item["pet"] = b.pet_name[:200]
        appointments.append(item)
    for tid, counts in lengths.items():
        # A type's usual length is its commonest booking (as a CSV import reads it), not whichever
        # booking came first: the estimator's baseline for the type.
        types[tid]["booked_min"] = max(counts.items(), key=lambda kv: (kv[1], -kv[0]))[0]
    doc = {"vets": list(vets.values()), "appointment_types": list(types.values()), "clients": list(clients.values()),
           "pets": list(pets.values()), "appointments": appointments}
    return doc, notes


_FIELD = re.compile(r"^(vets|appointment_types|clients|pets|appointments)\[(\d+)\]")


def _drop(doc: dict[str, Any], field_name: str | None) -> str | None:
    """Take out of `doc` the row a BadRequest named (and what depends on it); the row's id."""
    match = _FIELD.match(field_name or "")
    if match is None:
        return None
    key, index = match.group(1), int(match.group(2))
    rows = doc[key]
    if index >= len(rows):
        return None
    row = rows.pop(index)
    rid = str(row.get("id"))
    if key == "vets":
        doc["appointments"] = [a for a in doc["appointments"] if a["vet"] != rid]
    elif key == "appointment_types":
        for a in doc["appointments"]:
            if a.get("type") == rid:
                del a["type"]
    elif key == "clients":
        for p in doc["pets"]:
            if p.get("client") == rid:
                p["client"] = None
    elif key == "pets":
        for a in doc["appointments"]:
            if a.get("pet") == rid:
                del a["pet"]
    return rid


async def apply_bookings(store: Store, pms: str, label: str, bookings: Sequence[Booking], clinic: Clinic,
                         now: datetime, *, window: tuple[date, date] | None = None,
                         also_listed: Iterable[str] = (), problems: Iterable[str] = ()) -> SyncResult:
    """Put `bookings` into the day (see the module doc). With `window` (first, last clinic
    day) the bookings are the practice system's complete list for those days: a visit of ours
    from it that is no longer listed was deleted there, and is cancelled here if still booked.
    `also_listed`: ids the system listed but the connector could not read (still there: left
    as they were, never taken for deleted); `problems`: the connector's words for them."""
    result = SyncResult(fetched=len(bookings))
    result.skipped.extend(problems)
    doc, notes = bookings_doc(pms, bookings, clinic.region)
    result.skipped.extend(notes)
    cancelled_ids = {f"{pms}:{b.id}" for b in bookings if b.cancelled}
    listed = {f"{pms}:{b.id}" for b in bookings} | {f"{pms}:{i}" for i in also_listed}
    arrived_ids = {f"{pms}:{b.id}" for b in bookings if b.arrived and not b.cancelled}
    cap = max_visits_per_day(clinic.settings)
    for _ in range(200):
        try:
            async with store.transaction() as tx:
                await _keep_preferences(tx, doc)
                # The same path `waitroom import` and POST /api/schedule take.
                counts = await import_schedule(tx, doc, clinic.tz, clinic.region, max_per_day=cap)
                gone: list[tuple[str, str]] = []
                for vid in sorted(cancelled_ids):
                    found = await tx.visit(vid)
                    if found is not None:
                        gone.append((vid, found.status))
                if window is not None:
                    here = await tx.pms_booked_visits(prefix(pms), window[0], window[1])
                    gone += [(vid, status) for vid, status in sorted(here.items())
                             if vid not in listed and not _OURS.search(vid)]
                cancelled = 0
                for vid, status in gone:
                    if status == "booked":
                        await tx.set_visit_status(vid, "cancelled")
                        why = "cancelled" if vid in cancelled_ids else "no longer listed"
                        await tx.record_event("pms_cancel", now, vid, {"pms": pms, "why": why}, f"pms:{pms}", now)
                        cancelled += 1
                    elif status in ("waiting", "in_consult"):
                        result.kept.append(f"{vid}: cancelled in {label}, but the client has arrived here: kept")
                arrived = 0
                if arrived_ids:
                    # A check-in reception took back here stays taken back, whatever the practice
                    # system still says (it may be our own write-back, not yet set right there).
                    arrived_ids -= {e.appointment for e in await tx.events_at_or_after(now - timedelta(hours=24),
                                                                                        ("undo",))
                                    if e.data.get("type") == "checkin" and e.appointment}
                for vid in sorted(arrived_ids):
                    found = await tx.visit(vid)
                    if found is not None and found.status == "booked":
                        # Checked in at the desk in the practice system: the same check-in event
                        # as the kiosk's, by the system (never written back to it).
                        await apply_event(tx, Event("checkin", now, vid), f"pms:{pms}", clinic.tz, now)
                        arrived += 1
                await tx.record_event("schedule_import", now, None,
                                      {"counts": counts, "source": pms, "cancelled": cancelled, "arrived": arrived,
                                       "skipped": len(result.skipped)}, f"pms:{pms}", now)
            result.imported = counts.get("appointments", 0)
            result.cancelled = cancelled
            result.arrived = arrived
            return result
        except TooLarge as e:
            raise SyncRefused(f"{label}: {e}; nothing of this sync was kept") from e
        except BadRequest as e:
            dropped = _drop(doc, e.field)
            if dropped is None:
                raise SyncRefused(f"{label}: the schedule was refused: {e}") from e
            result.skipped.append(f"{dropped}: {e}")
    raise SyncRefused(f"{label}: too many bookings refused; nothing of this sync was kept")


async def _keep_preferences(tx: Tx, doc: dict[str, Any]) -> None:
    """What the practice system does not say is not overwritten: consent to texts given here
    (the kiosk asks) stays given, a language set here stays set."""
    clients = {c["id"]: c for c in doc["clients"]}
    for cid, (consent, language) in (await tx.client_preferences(sorted(clients))).items():
        c = clients[cid]
        c["sms_consent"] = bool(c.get("sms_consent")) or consent
        if "language" not in c:
            c["language"] = language


class SyncRefused(Exception):
    """The store would not take a sync (too many visits for a day, ...): nothing was kept."""


# -- write-back ----------------------------------------------------------------------------


def _write_for(pms: str, seq: int, event_type: str, visit_id: str, data: dict[str, Any],
               at: datetime) -> NewPmsWrite | None:
    if event_type == "undo":
        undone = _UNDONE.get(str(data.get("type")))
        if undone is None:
            return None  # an undone override here changed nothing the practice system holds
        action = undone
    else:
        action = {"checkin": "arrived", "start": "started", "cancel_visit": "cancelled",
                  "reschedule": "rescheduled"}[event_type]
    payload: dict[str, Any] = {"at": at.isoformat(), "pet": data.get("pet")}
    if event_type == "reschedule":
        payload.update(vet=data.get("vet"), scheduled=data.get("scheduled"), new_id=data.get("new_id"))
    return NewPmsWrite(pms, f"{pms}:{seq}:{action}", visit_id, action, payload)


async def queue_write_backs(store: Store, pms: str, now: datetime, *, batch: int = 500) -> int:
    """Turn our events since the connector's cursor into write-back rows (see the module doc)."""
    queued = 0
    while True:
        async with store.transaction() as tx:
            state = await tx.pms_state(pms)
            if state.events_seen == 0 and state.last_ok_at is None:
                # First run: what happened before the connector was set up is not written back.
                state.events_seen = await tx.last_event_seq()
                await tx.save_pms_state(state)
                return 0
            events = await tx.events_since(state.events_seen, types=WRITE_BACK_EVENTS, limit=batch)
            rows = []
            for ev in events:
                if ev.appointment is None or not ev.appointment.startswith(prefix(pms)) or ev.actor.startswith("pms:"):
                    continue
                data = dict(ev.data)
                if not data.get("pet"):  # a check-in names no pet: reception's words do
                    found = await tx.visit(ev.appointment)
                    data["pet"] = found.visit.pet if found is not None else None
                row = _write_for(pms, ev.seq, ev.type, ev.appointment, data, ev.at)
                if row is not None:
                    rows.append(row)
            queued += await tx.queue_pms_writes(rows, now)
            if events:
                state.events_seen = events[-1].seq
                await tx.save_pms_state(state)
        if len(events) < batch:
            return queued


async def drain_write_backs(store: Store, connector: Connector, now: datetime, *, limit: int = 50) -> int:
    """Send the due write-backs; how many were done (sent or turned into a task)."""
    from server.connectors.http import ConnectorError

    async with store.read() as q:
        due: list[PmsWrite] = await q.due_pms_writes(connector.name, now, limit)
    done = 0
    for row in due:
        pms_id = row.visit_id[len(prefix(connector.name)):]
        try:
            moved = _OURS.search(pms_id)
            if moved and row.action in ("arrived", "started"):
                # The booking a client moved by text link is ours (`<id>-rN`): the practice
                # system still has the original, until reception moves it (their task).
                original = pms_id[:moved.start()]
                pet = f" ({row.data['pet']})" if row.data.get("pet") else ""
                what = "has arrived" if row.action == "arrived" else "is in consultation"
                outcome = WriteOutcome("task", f"Appointment {original}{pet} {what} at the time the client moved "
                                       f"it to by text link: move it in {connector.label} and set its status")
            else:
                outcome = await connector.write_back(pms_id, row.action, row.data)
        except ConnectorError as e:
            attempts = row.attempts + 1
            message = str(e)[:300]
            async with store.transaction() as tx:
                if not e.retryable or attempts >= MAX_WRITE_ATTEMPTS:
                    await tx.finish_pms_write(row.id, "failed", now, error=message)
                else:
                    wait = WRITE_BACKOFF_S[min(attempts - 1, len(WRITE_BACKOFF_S) - 1)]
                    await tx.finish_pms_write(row.id, "queued", now, error=message,
                                              next_at=now + timedelta(seconds=wait))
            log.warning("%s: write-back %s of %s failed: %s", connector.name, row.action, row.visit_id, message)
            continue
        async with store.transaction() as tx:
            await tx.finish_pms_write(row.id, outcome.status, now, error=outcome.message or None)
        done += 1
    return done


def task_text(label: str, pms_id: str, data: dict[str, Any]) -> str:
    """Reception's task when a client moved a booking by text link and the API cannot move it."""
    pet = f" ({data['pet']})" if data.get("pet") else ""
    when = data.get("scheduled") or "the new time"
    return f"Move appointment {pms_id}{pet} in {label} to {when}: the client rescheduled by text link"


def utcnow() -> datetime:
    return datetime.now(UTC)


__all__ = ["Booking", "Connector", "PmsSyncState", "SyncRefused", "SyncResult", "WriteOutcome", "apply_bookings",
           "bookings_doc", "drain_write_backs", "prefix", "queue_write_backs"]
