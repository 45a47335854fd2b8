"""The SQLite backend: one file, one writer path, numbered migrations, aiosqlite's public API.

Every write goes through `SqliteStore.transaction()`: an asyncio.Lock around `BEGIN IMMEDIATE`
... `COMMIT`. Two tasks sharing one aiosqlite connection would otherwise commit each other's
half-done work. Reads (`SqliteStore.read()`) use the same connection without the lock.

Times are stored as one canonical text form (`server.timeutil.to_db`: fixed-width UTC,
`2026-03-02T13:50:00.000000Z`), so they compare as strings; migration 0005 rewrote the older
`+00:00` forms.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, date, datetime, tzinfo
from importlib import resources
from typing import Any

import aiosqlite

from notifier.outbox import HELD_IMPLAUSIBLE, NewText, OutboxRow
from notifier.policy import SentText
from notifier.recovery import RecoveryOffer
from server.domain import DayState, Estimate, Visit
from server.store.interface import (
    ROLES,
    BoardVisit,
    BookedVisit,
    BookingDetail,
    Clinic,
    InboxMessage,
    KioskBooking,
    LoggedEvent,
    LoginAttempt,
    MobileVisit,
    StaffSession,
    StoredVisit,
    StoreUrlError,
    TextContact,
    TextsPaused,
    ToldText,
    UnsettledText,
    VetBlock,
    VisitContact,
)
from server.store.sqlite_pms import SqlitePmsOps
from server.store.sqlite_reports import SqliteReportQueries
from server.timeutil import from_db, to_db, tz_from


async def fetch(conn: Any, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
    """All rows of a query, as a list (aiosqlite types its answer as a bare iterable)."""
    return list(await conn.execute_fetchall(sql, params))


def _migrations() -> list[tuple[int, str, str]]:
    out = []
    for entry in resources.files("server.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), name, entry.read_text()))
    return sorted(out)


def _split_sql(sql: str) -> list[str]:
    """Statements of a migration file (ours hold no semicolons inside strings or triggers)."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def hash_token(token: str) -> str:
    # Tokens are 256-bit random strings, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


class ReadOnly(RuntimeError):
    """A write attempted through `Store.read()`."""


class SqliteTx(SqliteReportQueries, SqlitePmsOps):
    """One transaction (or a read) on the store's connection: the named operations."""

    def __init__(self, conn: aiosqlite.Connection, *, writable: bool) -> None:
        self._db = conn
        self._writable = writable

    # -- raw SQL: for this backend's own tests only (what the interface must never offer: a
    # migration's old rows, a corrupt row). The architecture test forbids SQL outside
    # server/store/ in the server and the notifier.

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Cursor:
        return await self._db.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> aiosqlite.Cursor:
        self._need_write()
        return await self._db.executemany(sql, rows)

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> Iterable[aiosqlite.Row]:
        return await self._db.execute_fetchall(sql, params)

    @property
    def total_changes(self) -> int:
        return self._db.total_changes

    def _need_write(self) -> None:
        if not self._writable:
            raise ReadOnly("a write through Store.read(): use Store.transaction()")

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        return list(await self._db.execute_fetchall(sql, params))

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Cursor:
        self._need_write()
        return await self._db.execute(sql, params)

    # -- clinic ---------------------------------------------------------------------------------

    async def clinic(self) -> Clinic:
        rows = await self._rows("SELECT name, timezone, region, phone, settings FROM clinic WHERE id = 1")
        if not rows:
            return Clinic(name="Clinic", timezone="UTC")
        r = rows[0]
        return Clinic(r["name"], r["timezone"], r["region"], r["phone"], json.loads(r["settings"]))

    async def set_clinic(self, clinic: Clinic) -> None:
        tz_from(clinic.timezone)  # reject an unknown zone before it is stored
        await self._write(
            "INSERT INTO clinic (id, name, timezone, region, phone, settings) VALUES (1, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, timezone = excluded.timezone, "
            "region = excluded.region, phone = excluded.phone, settings = excluded.settings",
            (clinic.name, clinic.timezone, clinic.region, clinic.phone, clinic.settings_json()),
        )

    # -- visits: the changes events make -----------------------------------------------------------

    async def has_vet(self, vet_id: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM vets WHERE id = ?", (vet_id,)))

    async def booked_length(self, type_id: str) -> float | None:
        rows = await self._rows("SELECT booked_min FROM appointment_types WHERE id = ?", (type_id,))
        return float(rows[0][0]) if rows else None

    async def vet_unavailable_until(self, vet_id: str) -> datetime | None:
        rows = await self._rows("SELECT unavailable_until FROM vet_status WHERE vet_id = ?", (vet_id,))
        return from_db(rows[0][0]) if rows else None

    async def set_vet_unavailable_until(self, vet_id: str, until: datetime | None) -> None:
        await self._write("INSERT INTO vet_status (vet_id, unavailable_until) VALUES (?, ?) ON CONFLICT (vet_id) "
                          "DO UPDATE SET unavailable_until = excluded.unavailable_until", (vet_id, to_db(until)))

    async def count_visits(self, day: date) -> int:
        rows = await self._rows("SELECT COUNT(*) FROM appointments WHERE day = ? AND status != 'cancelled'",
                                (day.isoformat(),))
        return int(rows[0][0])

    async def add_arrived_visit(self, visit: Visit, day: date) -> None:
        await self._write(
            "INSERT INTO appointments (id, kind, day, vet_id, type_id, pet_name, booked_min, expected_min, "
            "status, arrived) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'waiting', ?)",
            (visit.id, visit.kind, day.isoformat(), visit.vet, visit.type, visit.pet, visit.booked_min,
             visit.expected_min, to_db(visit.arrived)))

    async def book_again(self, visit_id: str, new_id: str, vet_id: str, scheduled: datetime, day: date) -> None:
        await self._write(
            "INSERT INTO appointments (id, kind, day, vet_id, type_id, pet_id, pet_name, scheduled, booked_min, "
            "status) SELECT ?, 'appointment', ?, ?, type_id, pet_id, pet_name, ?, booked_min, 'booked' "
            "FROM appointments WHERE id = ?", (new_id, day.isoformat(), vet_id, to_db(scheduled), visit_id))

    async def record_arrival(self, visit_id: str, at: datetime) -> None:
        await self._write("UPDATE appointments SET status = 'waiting', arrived = ? WHERE id = ?", (to_db(at), visit_id))

    async def record_start(self, visit_id: str, at: datetime) -> None:
        await self._write("UPDATE appointments SET status = 'in_consult', started = ?, arrived = COALESCE(arrived, ?) "
                          "WHERE id = ?", (to_db(at), to_db(at), visit_id))

    async def record_end(self, visit_id: str, at: datetime) -> None:
        await self._write("UPDATE appointments SET status = 'done', ended = ? WHERE id = ?", (to_db(at), visit_id))

    async def set_visit_status(self, visit_id: str, status: str) -> None:
        await self._write("UPDATE appointments SET status = ? WHERE id = ?", (status, visit_id))

    async def undo_visit_event(self, visit_id: str, event_type: str) -> None:
        back = {
            "checkin": "status = 'booked', arrived = NULL",
            "start": "status = 'waiting', started = NULL",
            "emergency_start": "status = 'waiting', started = NULL",
            "end": "status = 'in_consult', ended = NULL",
            "emergency_end": "status = 'in_consult', ended = NULL",
            "noshow": "status = CASE WHEN arrived IS NULL THEN 'booked' ELSE 'waiting' END",
            "walkin": "status = 'cancelled'",
            "emergency": "status = 'cancelled'",
        }[event_type]
        await self._write(f"UPDATE appointments SET {back} WHERE id = ?", (visit_id,))

    async def move_visit(self, visit_id: str, vet_id: str, priority: float | None) -> None:
        await self._write("UPDATE appointments SET vet_id = ?, priority = ? WHERE id = ?", (vet_id, priority, visit_id))

    async def set_visit_priority(self, visit_id: str, priority: float | None) -> None:
        await self._write("UPDATE appointments SET priority = ? WHERE id = ?", (priority, visit_id))

    async def texts_paused_for(self, client_id: str | None) -> bool:
        scope, cid = ("client", client_id) if client_id else ("clinic", "")
        return bool(await self._rows("SELECT 1 FROM texts_paused WHERE scope = ? AND client_id = ?", (scope, cid)))

    async def pause_texts(self, client_id: str | None, at: datetime, by: str) -> None:
        scope, cid = ("client", client_id) if client_id else ("clinic", "")
        await self._write("INSERT OR IGNORE INTO texts_paused (scope, client_id, paused_at, paused_by) "
                          "VALUES (?, ?, ?, ?)", (scope, cid, to_db(at), by))

    async def resume_texts(self, client_id: str | None) -> None:
        scope, cid = ("client", client_id) if client_id else ("clinic", "")
        await self._write("DELETE FROM texts_paused WHERE scope = ? AND client_id = ?", (scope, cid))

    async def wait_in_car(self, visit_id: str, since: datetime) -> None:
        await self._write("INSERT OR IGNORE INTO waiting_in_car (visit_id, since) VALUES (?, ?)",
                          (visit_id, to_db(since)))

    async def stop_waiting_in_car(self, visit_id: str) -> None:
        await self._write("DELETE FROM waiting_in_car WHERE visit_id = ?", (visit_id,))

    async def undone_seqs(self) -> set[int]:
        return {int(json.loads(r[0])["seq"]) for r in await self._rows("SELECT data FROM events WHERE type = 'undo'")}

    async def cancel_queued_text(self, row_id: int, now: datetime, message: str) -> bool:
        cur = await self._write("UPDATE outbox SET status = 'failed', error_message = ?, updated_at = ? "
                                "WHERE id = ? AND status = 'queued'", (message, to_db(now), row_id))
        return cur.rowcount > 0

    async def reopen_inbound(self, inbound_id: int) -> None:
        await self._write("UPDATE inbound_messages SET handled_at = NULL WHERE id = ?", (inbound_id,))

    async def forget_recovery_offer(self, visit_id: str) -> None:
        await self._write("DELETE FROM recovery_offers WHERE visit_id = ?", (visit_id,))

    async def add_reschedule_request(self, provider_sid: str, number: str, body: str, visit_id: str,
                                     now: datetime) -> None:
        await self._write(
            "INSERT INTO inbound_messages (provider_sid, from_number, body, kind, visit_id, needs_reception, "
            "received_at) VALUES (?, ?, ?, 'reschedule', ?, 1, ?)", (provider_sid, number, body, visit_id, to_db(now)))

    # -- schedule -------------------------------------------------------------------------------

    async def save_vet(self, vet_id: str, name: str) -> None:
        await self._write("INSERT INTO vets (id, name) VALUES (?, ?) "
                          "ON CONFLICT (id) DO UPDATE SET name = excluded.name", (vet_id, name))

    async def save_appointment_type(self, type_id: str, name: str, booked_min: float) -> None:
        await self._write(
            "INSERT INTO appointment_types (id, name, booked_min) VALUES (?, ?, ?) ON CONFLICT (id) "
            "DO UPDATE SET name = excluded.name, booked_min = excluded.booked_min", (type_id, name, booked_min))

    async def save_client(self, client_id: str, name: str, mobile: str | None, sms_consent: bool, language: str,
                          notes: str) -> None:
        await self._write(
            "INSERT INTO clients (id, name, mobile, sms_consent, language, notes) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, mobile = excluded.mobile, "
            "sms_consent = excluded.sms_consent, language = excluded.language, notes = excluded.notes",
            (client_id, name, mobile, int(sms_consent), language, notes))

    async def has_client(self, client_id: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM clients WHERE id = ?", (client_id,)))

    async def save_pet(self, pet_id: str, client_id: str | None, name: str, species: str | None, sex: str) -> None:
        await self._write(
            "INSERT INTO pets (id, client_id, name, species, sex) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id, name = excluded.name, "
            "species = excluded.species, sex = excluded.sex", (pet_id, client_id, name, species, sex))

    async def known_pets(self, pet_ids: Iterable[str]) -> set[str]:
        ids = sorted(set(pet_ids))
        out: set[str] = set()
        for i in range(0, len(ids), 500):  # SQLite's host-parameter limit
            chunk = ids[i:i + 500]
            out |= {str(r[0]) for r in await self._rows(
                f"SELECT id FROM pets WHERE id IN ({','.join('?' * len(chunk))})", chunk)}
        return out

    async def save_bookings(self, bookings: Iterable[BookedVisit]) -> None:
        self._need_write()
        # One statement for the whole push (a day is a few hundred rows). A re-push moves a
        # booking that has not happened yet; it never rewrites what happened.
        await self._db.executemany(
            "INSERT INTO appointments (id, kind, day, vet_id, type_id, pet_id, pet_name, scheduled, booked_min) "
            "VALUES (?, 'appointment', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "day = excluded.day, vet_id = excluded.vet_id, type_id = excluded.type_id, pet_id = excluded.pet_id, "
            "pet_name = excluded.pet_name, scheduled = excluded.scheduled, booked_min = excluded.booked_min "
            "WHERE appointments.status = 'booked'",
            [(b.id, b.day.isoformat(), b.vet, b.type, b.pet_id, b.pet_name, to_db(b.scheduled), b.booked_min)
             for b in bookings])

    async def save_vet_blocks(self, blocks: Iterable[VetBlock]) -> None:
        self._need_write()
        await self._db.executemany(
            "INSERT INTO vet_blocks (id, vet_id, day, start_at, end_at, reason) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET vet_id = excluded.vet_id, day = excluded.day, "
            "start_at = excluded.start_at, end_at = excluded.end_at, reason = excluded.reason",
            [(b.id, b.vet, b.day.isoformat(), to_db(b.start), to_db(b.end), b.reason) for b in blocks])

    # -- the board (server/web/board.py) ----------------------------------------------------------

    async def board_visits(self, day: date) -> list[BoardVisit]:
        rows = await self._rows(
            "SELECT a.id, a.kind, a.status, a.vet_id, a.booked_min, a.scheduled, a.arrived, a.started, a.ended, "
            "a.priority, COALESCE(p.name, a.pet_name) AS pet, p.species, p.sex, c.id AS client_id, "
            "c.name AS client, c.mobile, c.sms_consent, c.notes, c.language, t.name AS type_name "
            "FROM appointments a LEFT JOIN pets p ON p.id = a.pet_id LEFT JOIN clients c ON c.id = p.client_id "
            "LEFT JOIN appointment_types t ON t.id = a.type_id "
            "WHERE a.day = ? AND a.status != 'cancelled' ORDER BY a.scheduled, a.arrived, a.id", (day.isoformat(),))
        return [BoardVisit(
            id=r["id"], kind=r["kind"], status=r["status"], vet=r["vet_id"], booked_min=float(r["booked_min"]),
            scheduled=from_db(r["scheduled"]), arrived=from_db(r["arrived"]), started=from_db(r["started"]),
            ended=from_db(r["ended"]), priority=r["priority"], pet=r["pet"], species=r["species"], sex=r["sex"],
            client_id=r["client_id"], client=r["client"], mobile=r["mobile"], sms_consent=bool(r["sms_consent"]),
            notes=r["notes"], language=r["language"], type_name=r["type_name"]) for r in rows]

    async def visits_waiting_in_car(self) -> set[str]:
        return {str(r[0]) for r in await self._rows("SELECT visit_id FROM waiting_in_car")}

    async def told_range_ends(self, visit_ids: list[str]) -> list[tuple[str, datetime]]:
        kept: list[tuple[str, datetime | None]] = []
        texted: list[tuple[int, str, datetime | None]] = []
        for i in range(0, len(visit_ids), 500):  # SQLite's host-parameter limit
            chunk = visit_ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            kept += [(r[0], from_db(r[1])) for r in await self._rows(
                f"SELECT visit_id, p90 FROM promises WHERE visit_id IN ({marks})", chunk)]
            texted += [(int(r[0]), r[1], from_db(r[2])) for r in await self._rows(
                f"SELECT id, visit_id, told_p90 FROM outbox WHERE told_p90 IS NOT NULL AND status != 'failed' "
                f"AND visit_id IN ({marks})", chunk)]
        told = kept + [(vid, t) for _, vid, t in sorted(texted)]
        return [(vid, t) for vid, t in told if t is not None]

    async def events_by_people(self, recorded_since: datetime, also_types: tuple[str, ...],
                               limit: int) -> list[LoggedEvent]:
        rows = await self._rows(
            "SELECT e.seq, e.at, e.recorded_at, e.type, e.appointment_id, e.data, e.actor, a.vet_id FROM events e "
            "LEFT JOIN appointments a ON a.id = e.appointment_id WHERE e.recorded_at >= ? "
            "AND (e.actor LIKE 'user:%' OR e.actor LIKE 'token:%' "
            f"OR e.type IN ({','.join('?' * len(also_types)) or 'NULL'})) ORDER BY e.seq DESC LIMIT ?",
            (to_db(recorded_since), *also_types, limit))
        return [_logged(r) for r in rows]

    async def events_at_or_after(self, at: datetime, types: tuple[str, ...]) -> list[LoggedEvent]:
        if not types:
            return []
        rows = await self._rows(
            "SELECT e.seq, e.at, e.recorded_at, e.type, e.appointment_id, e.data, e.actor, a.vet_id FROM events e "
            f"LEFT JOIN appointments a ON a.id = e.appointment_id WHERE e.type IN ({','.join('?' * len(types))}) "
            "AND e.at >= ? ORDER BY e.seq DESC", (*types, to_db(at)))
        return [_logged(r) for r in rows]

    async def inbox_messages(self) -> list[InboxMessage]:
        rows = await self._rows(
            "SELECT m.id, m.from_number, m.body, m.kind, m.visit_id, m.received_at, c.name AS client, "
            "COALESCE(p.name, a.pet_name) AS pet FROM inbound_messages m "
            "LEFT JOIN appointments a ON a.id = m.visit_id LEFT JOIN pets p ON p.id = a.pet_id "
            "LEFT JOIN clients c ON c.id = p.client_id "
            "WHERE m.handled_at IS NULL AND (m.needs_reception = 1 OR m.kind = 'reschedule') ORDER BY m.id")
        media = await self.inbound_media([int(r["id"]) for r in rows])
        out = []
        for r in rows:
            received = from_db(r["received_at"])
            assert received is not None
            out.append(InboxMessage(int(r["id"]), r["from_number"], r["body"], r["kind"], r["visit_id"], received,
                                    r["client"], r["pet"], media.get(int(r["id"]), [])))
        return out

    async def unsettled_texts(self, since: datetime | None, row_id: int | None, settled_codes: Iterable[str],
                              cancelled_message: str) -> list[UnsettledText]:
        codes = [*settled_codes, "opted_out"]
        where, args = "", list[Any]()
        if since is not None:
            where += " AND o.created_at >= ?"
            args.append(to_db(since))
        if row_id is not None:
            where += " AND o.id = ?"
            args.append(row_id)
        rows = await self._rows(
            "SELECT o.id, o.status, o.kind, o.to_number, o.body, o.error_code, o.error_message, o.created_at, "
            "o.updated_at, o.visit_id, COALESCE(p.name, a.pet_name) AS pet, "
            "COALESCE(c.name, (SELECT name FROM clients WHERE mobile = o.to_number ORDER BY id LIMIT 1)) AS client, "
            "v.name AS vet, a.scheduled, "
            "CASE WHEN EXISTS (SELECT 1 FROM opt_outs x WHERE x.number = o.to_number) THEN 1 ELSE 0 END AS opted_out "
            "FROM outbox o LEFT JOIN appointments a ON a.id = o.visit_id LEFT JOIN pets p ON p.id = a.pet_id "
            "LEFT JOIN clients c ON c.id = p.client_id LEFT JOIN vets v ON v.id = a.vet_id "
            f"WHERE o.status IN ('held', 'failed'){where} "
            f"AND (o.status = 'held' OR (COALESCE(o.error_code, '') NOT IN ({','.join('?' * len(codes))}) "
            "AND COALESCE(o.error_message, '') != ?)) ORDER BY o.id", (*args, *codes, cancelled_message))
        out = []
        for r in rows:
            written, at = from_db(r["created_at"]), from_db(r["updated_at"])
            assert written is not None and at is not None
            out.append(UnsettledText(
                id=int(r["id"]), status=r["status"], kind=r["kind"], to_number=r["to_number"], body=r["body"],
                error_code=r["error_code"], error_message=r["error_message"], written=written, at=at,
                visit_id=r["visit_id"], pet=r["pet"], client=r["client"], vet=r["vet"],
                scheduled=from_db(r["scheduled"]), opted_out=bool(r["opted_out"])))
        return out

    # -- visits ---------------------------------------------------------------------------------

    async def visit(self, visit_id: str) -> StoredVisit | None:
        rows = await self._rows(f"SELECT {_VISIT_COLUMNS}, a.day FROM appointments a "
                                "LEFT JOIN pets p ON p.id = a.pet_id WHERE a.id = ?", (visit_id,))
        return StoredVisit(_visit(rows[0]), rows[0]["status"], date.fromisoformat(rows[0]["day"])) if rows else None

    async def visits_for_day(self, day: date) -> DayState:
        vets, away = [], {}
        for r in await self._rows("SELECT v.id, s.unavailable_until FROM vets v "
                                  "LEFT JOIN vet_status s ON s.vet_id = v.id ORDER BY v.id"):
            vets.append(r[0])
            t = from_db(r[1])
            if t is not None:
                away[r[0]] = t
        rows = await self._rows(
            f"SELECT {_VISIT_COLUMNS} FROM appointments a LEFT JOIN pets p ON p.id = a.pet_id "
            "WHERE a.day = ? AND a.status != 'cancelled' ORDER BY a.scheduled, a.arrived, a.id",
            (day.isoformat(),),
        )
        visits = {r["id"]: _visit(r) for r in rows}
        blocks: dict[str, list[tuple[datetime, datetime]]] = {}
        for r in await self._rows("SELECT vet_id, start_at, end_at FROM vet_blocks WHERE day = ? "
                                  "ORDER BY start_at, id", (day.isoformat(),)):
            start, end = from_db(r[1]), from_db(r[2])
            if start is not None and end is not None:
                blocks.setdefault(r[0], []).append((start, end))
        return DayState(vets=vets, visits=visits, vet_unavailable_until=away, blocks=blocks)

    async def finished_visits_before(self, day: date) -> list[Visit]:
        rows = await self._rows(
            f"SELECT {_VISIT_COLUMNS} FROM appointments a LEFT JOIN pets p ON p.id = a.pet_id "
            "WHERE a.day < ? AND a.status IN ('done', 'noshow') ORDER BY a.day, a.scheduled, a.arrived",
            (day.isoformat(),),
        )
        return [_visit(r) for r in rows]

    async def booked_lengths(self) -> dict[str, float]:
        return {r[0]: float(r[1]) for r in await self._rows("SELECT id, booked_min FROM appointment_types")}

    async def add_history(self, visits: Iterable[Visit], tz: tzinfo) -> int:
        self._need_write()
        known = {r[0] for r in await self._rows("SELECT id FROM appointment_types")}
        new_types: dict[str, float] = {}
        rows = []
        for v in visits:
            if v.type is not None and v.type not in known and v.kind != "emergency":
                # A type only history knows: keep it, so what is learned stays per type.
                new_types.setdefault(v.type, v.booked_min)
            when = v.scheduled or v.arrived or v.started
            if when is None:
                continue
            status = "noshow" if v.noshow or (v.kind == "appointment" and v.arrived is None) else "done"
            rows.append((
                v.id, v.kind, when.astimezone(tz).date().isoformat(), v.vet,
                v.type if (v.type in known or v.type in new_types) else None, v.pet,
                to_db(v.scheduled), v.booked_min, v.expected_min, status,
                to_db(v.arrived), to_db(v.started), to_db(v.ended),
            ))
        # One statement each, not one per row: a 60-day history is thousands of rows.
        await self._db.executemany("INSERT INTO appointment_types (id, name, booked_min) VALUES (?, ?, ?)",
                                     [(t, t, b) for t, b in new_types.items()])
        await self._db.executemany(
            "INSERT OR IGNORE INTO appointments (id, kind, day, vet_id, type_id, pet_name, scheduled, "
            "booked_min, expected_min, status, arrived, started, ended) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    async def last_event_seq(self) -> int:
        rows = await self._rows("SELECT MAX(seq) FROM events")
        return int(rows[0][0] or 0)

    async def record_event(self, type: str, at: datetime, appointment: str | None, data: dict[str, Any],
                           actor: str, now: datetime) -> int:
        cur = await self._write(
            "INSERT INTO events (at, recorded_at, type, appointment_id, data, actor) VALUES (?, ?, ?, ?, ?, ?)",
            (to_db(at), to_db(now), type, appointment, json.dumps(data), actor))
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def event(self, seq: int) -> LoggedEvent | None:
        rows = await self._rows(
            "SELECT e.seq, e.at, e.recorded_at, e.type, e.appointment_id, e.data, e.actor, a.vet_id FROM events e "
            "LEFT JOIN appointments a ON a.id = e.appointment_id WHERE e.seq = ?", (seq,))
        return _logged(rows[0]) if rows else None

    async def events_since(self, seq: int, *, types: tuple[str, ...] | None = None,
                           limit: int | None = None) -> list[LoggedEvent]:
        where, args = "e.seq > ?", list[Any]([seq])
        if types is not None:
            where += f" AND e.type IN ({','.join('?' * len(types))})"
            args += types
        rows = await self._rows(
            "SELECT e.seq, e.at, e.recorded_at, e.type, e.appointment_id, e.data, e.actor, a.vet_id FROM events e "
            f"LEFT JOIN appointments a ON a.id = e.appointment_id WHERE {where} ORDER BY e.seq"
            + (" LIMIT ?" if limit is not None else ""), (*args, *([limit] if limit is not None else [])))
        return [_logged(r) for r in rows]

    # -- texting ---------------------------------------------------------------------------------

    async def texts_paused(self) -> TextsPaused:
        rows = await self._rows("SELECT scope, client_id FROM texts_paused")
        return TextsPaused(clinic=any(r[0] == "clinic" for r in rows),
                           clients=frozenset(r[1] for r in rows if r[0] == "client"))

    async def text_contacts(self, visit_ids: list[str]) -> dict[str, TextContact]:
        if not visit_ids:
            return {}
        # One query (it runs in every event's transaction): contact details and the range promised.
        rows = await self._rows(
            "SELECT a.id, p.name AS pet, p.sex, c.id AS client, c.mobile, c.sms_consent, c.language, "
            "v.name AS vet, pr.p10 AS told_p10, pr.p90 AS told_p90 "
            "FROM appointments a LEFT JOIN pets p ON p.id = a.pet_id LEFT JOIN clients c ON c.id = p.client_id "
            "JOIN vets v ON v.id = a.vet_id LEFT JOIN promises pr ON pr.visit_id = a.id "
            f"WHERE a.id IN ({','.join('?' * len(visit_ids))})", visit_ids)
        return {r["id"]: TextContact(
            visit_id=r["id"], client=r["client"], mobile=r["mobile"], sms_consent=bool(r["sms_consent"]),
            language=r["language"] or "en", pet=r["pet"], pet_sex=r["sex"], vet_name=r["vet"],
            told_p10=from_db(r["told_p10"]), told_p90=from_db(r["told_p90"])) for r in rows}

    async def keep_first_promises(self, promised: dict[str, Estimate], now: datetime) -> None:
        self._need_write()
        # The first range stands (OR IGNORE): one statement, whatever was promised before.
        await self._db.executemany(
            "INSERT OR IGNORE INTO promises (visit_id, start, p10, p90, at) VALUES (?, ?, ?, ?, ?)",
            [(vid, to_db(e.start), to_db(e.p10), to_db(e.p90), to_db(now)) for vid, e in promised.items()])

    async def texts_told_after(self, row_id: int) -> list[ToldText]:
        out = []
        for r in await self._rows("SELECT id, visit_id, created_at, told_start, told_p10, told_p90 FROM outbox "
                                  "WHERE id > ? AND told_start IS NOT NULL ORDER BY id", (row_id,)):
            at, start, p10, p90 = (from_db(r[i]) for i in range(2, 6))
            assert at and start and p10 and p90
            out.append(ToldText(int(r[0]), r[1], at, start, p10, p90))
        return out

    # -- clients --------------------------------------------------------------------------------

    async def open_visits_for_mobile(self, mobile: str, day: date) -> list[MobileVisit]:
        rows = await self._rows(
            "SELECT a.id, c.language FROM appointments a JOIN pets p ON p.id = a.pet_id "
            "JOIN clients c ON c.id = p.client_id WHERE c.mobile = ? AND a.day = ? "
            "AND a.status IN ('booked', 'waiting') ORDER BY a.scheduled", (mobile, day.isoformat()))
        return [MobileVisit(r[0], r[1] or "en") for r in rows]

    async def booking_detail(self, visit_id: str) -> BookingDetail | None:
        rows = await self._rows(
            "SELECT a.id, a.status, a.day, a.vet_id, v.name AS vet_name, COALESCE(p.name, a.pet_name) AS pet, "
            "t.name AS type_name, a.booked_min, a.scheduled, c.mobile, c.sms_consent, c.language "
            "FROM appointments a JOIN vets v ON v.id = a.vet_id LEFT JOIN pets p ON p.id = a.pet_id "
            "LEFT JOIN clients c ON c.id = p.client_id LEFT JOIN appointment_types t ON t.id = a.type_id "
            "WHERE a.id = ?", (visit_id,))
        if not rows:
            return None
        r = rows[0]
        return BookingDetail(r["id"], r["status"], date.fromisoformat(r["day"]), r["vet_id"], r["vet_name"], r["pet"],
                             r["type_name"], float(r["booked_min"]), from_db(r["scheduled"]), r["mobile"],
                             bool(r["sms_consent"]), r["language"] or "en")

    async def vet_names(self) -> dict[str, str]:
        return {r[0]: r[1] for r in await self._rows("SELECT id, name FROM vets ORDER BY id")}

    async def booked_times(self, first: date, last: date, statuses: tuple[str, ...]
                           ) -> list[tuple[str, datetime, float]]:
        out = []
        for r in await self._rows(
                "SELECT vet_id, scheduled, booked_min FROM appointments WHERE day BETWEEN ? AND ? "
                f"AND scheduled IS NOT NULL AND status IN ({','.join('?' * len(statuses))})",
                (first.isoformat(), last.isoformat(), *statuses)):
            start = from_db(r["scheduled"])
            if start is not None:
                out.append((r["vet_id"], start, float(r["booked_min"])))
        return out

    async def vets_away(self) -> dict[str, datetime]:
        out = {}
        for r in await self._rows("SELECT vet_id, unavailable_until FROM vet_status "
                                  "WHERE unavailable_until IS NOT NULL"):
            until = from_db(r[1])
            if until is not None:
                out[r[0]] = until
        return out

    async def blocked_times(self, first: date, last: date) -> list[tuple[str, datetime, datetime, str]]:
        out = []
        for r in await self._rows("SELECT vet_id, start_at, end_at, reason FROM vet_blocks WHERE day BETWEEN ? AND ? "
                                  "ORDER BY start_at, id", (first.isoformat(), last.isoformat())):
            start, end = from_db(r[1]), from_db(r[2])
            if start is not None and end is not None:
                out.append((r[0], start, end, r[3]))
        return out

    async def kiosk_bookings(self, mobile: str, day: date) -> list[KioskBooking]:
        rows = await self._rows(
            "SELECT a.id, a.status, a.scheduled, p.name AS pet, p.sex, p.species, v.name AS vet, "
            "c.sms_consent, c.id AS client FROM appointments a JOIN pets p ON p.id = a.pet_id "
            "JOIN clients c ON c.id = p.client_id JOIN vets v ON v.id = a.vet_id "
            "WHERE c.mobile = ? AND a.day = ? AND a.kind = 'appointment' AND a.status IN ('booked', 'waiting') "
            "ORDER BY a.scheduled", (mobile, day.isoformat()))
        return [KioskBooking(r["id"], r["status"], from_db(r["scheduled"]), r["pet"], r["sex"], r["species"], r["vet"],
                             bool(r["sms_consent"]), r["client"]) for r in rows]

    async def set_sms_consent(self, client_id: str, consent: bool) -> None:
        await self._write("UPDATE clients SET sms_consent = ? WHERE id = ?", (int(consent), client_id))

    async def add_walkin_client(self, client_id: str, name: str, mobile: str | None, pet_id: str, pet_name: str,
                                species: str) -> None:
        await self._write("INSERT INTO clients (id, name, mobile, sms_consent) VALUES (?, ?, ?, 0)",
                          (client_id, name, mobile))
        await self._write("INSERT INTO pets (id, client_id, name, species, sex) VALUES (?, ?, ?, ?, 'unknown')",
                          (pet_id, client_id, pet_name, species))

    async def link_visit_to_pet(self, visit_id: str, pet_id: str) -> None:
        await self._write("UPDATE appointments SET pet_id = ? WHERE id = ?", (pet_id, visit_id))

    async def checked_in_here(self, visit_id: str, actor: str) -> bool:
        return bool(await self._rows(
            "SELECT 1 FROM events WHERE appointment_id = ? AND actor = ? AND type IN ('checkin', 'walkin') "
            "AND json_extract(data, '$.by_phone') IS NULL", (visit_id, actor)))

    async def remembered_answer(self, key: str) -> list[str] | None:
        rows = await self._rows("SELECT response FROM idempotency WHERE key = ?", (key,))
        return list(json.loads(rows[0][0])["visits"]) if rows else None

    async def remember_answer(self, key: str, visits: list[str], now: datetime) -> None:
        await self._write("INSERT INTO idempotency (key, response, created_at) VALUES (?, ?, ?)",
                          (key, json.dumps({"visits": visits}), to_db(now)))

    async def visit_contact(self, visit_id: str) -> VisitContact | None:
        rows = await self._rows(
            "SELECT a.id, a.kind, a.status, a.vet_id, COALESCE(p.name, a.pet_name) AS pet, c.id AS client_id, "
            "c.name AS client, c.mobile, c.sms_consent, c.notes, p.sex, p.species FROM appointments a "
            "LEFT JOIN pets p ON p.id = a.pet_id LEFT JOIN clients c ON c.id = p.client_id WHERE a.id = ?",
            (visit_id,))
        if not rows:
            return None
        r = rows[0]
        return VisitContact(r["id"], r["kind"], r["status"], r["vet_id"], r["pet"], r["client_id"], r["client"],
                            r["mobile"], bool(r["sms_consent"]), r["notes"], r["sex"], r["species"])

    async def vet_name(self, vet_id: str) -> str | None:
        rows = await self._rows("SELECT name FROM vets WHERE id = ?", (vet_id,))
        return str(rows[0][0]) if rows else None

    async def client_language(self, visit_id: str) -> str | None:
        rows = await self._rows("SELECT c.language FROM appointments a LEFT JOIN pets p ON p.id = a.pet_id "
                                "LEFT JOIN clients c ON c.id = p.client_id WHERE a.id = ?", (visit_id,))
        return rows[0][0] if rows else None

    async def erase_contacts_last_seen_before(self, day: date) -> list[str]:
        self._need_write()
        rows = await self._rows(
            "SELECT id FROM clients WHERE (mobile IS NOT NULL OR notes != '') AND id IN ("
            "  SELECT p.client_id FROM pets p JOIN appointments a ON a.pet_id = p.id"
            "  GROUP BY p.client_id HAVING MAX(a.day) < ?) ORDER BY id", (day.isoformat(),))
        ids = [r[0] for r in rows]
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            await self._write("UPDATE clients SET mobile = NULL, notes = '', sms_consent = 0 "
                              f"WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        return ids

    async def waiting_in_car(self, visit_id: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM waiting_in_car WHERE visit_id = ?", (visit_id,)))

    # -- staff ----------------------------------------------------------------------------------

    async def staff_name_taken(self, name: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM staff_users WHERE name = ?", (name,)))

    async def add_staff_user(self, name: str, password_hash: str, now: datetime, *,
                             group_admin: bool = False) -> None:
        if group_admin:
            raise StoreUrlError("a group admin belongs to a group's PostgreSQL database: a SQLite file holds "
                                "one clinic, whose staff accounts are its own")
        await self._write("INSERT INTO staff_users (name, password_hash, created_at) VALUES (?, ?, ?)",
                          (name, password_hash, to_db(now)))

    async def staff_password(self, name: str) -> tuple[int, str] | None:
        rows = await self._rows("SELECT id, password_hash FROM staff_users WHERE name = ? AND disabled = 0", (name,))
        return (int(rows[0][0]), rows[0][1]) if rows else None

    async def staff_session(self, token_hash: str) -> StaffSession | None:
        rows = await self._rows(
            "SELECT u.id, u.name, s.csrf, s.expires_at FROM staff_sessions s JOIN staff_users u ON u.id = s.user_id "
            "WHERE s.token_hash = ? AND u.disabled = 0", (token_hash,))
        if not rows or (expires := from_db(rows[0]["expires_at"])) is None:
            return None
        return StaffSession(int(rows[0]["id"]), rows[0]["name"], rows[0]["csrf"], expires)

    async def open_staff_session(self, token_hash: str, user_id: int, csrf: str, now: datetime,
                                 expires_at: datetime) -> None:
        await self._write(
            "INSERT INTO staff_sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            (token_hash, user_id, csrf, to_db(now), to_db(expires_at)))

    async def close_staff_session(self, token_hash: str) -> None:
        await self._write("DELETE FROM staff_sessions WHERE token_hash = ?", (token_hash,))

    async def login_attempts(self, *, name: str | None, remote: str | None, limit: int) -> list[LoginAttempt]:
        where, args = [], list[Any]()
        if name is not None:
            where.append("name = ?")
            args.append(name)
        if remote is not None:
            where.append("remote = ?")
            args.append(remote)
        rows = await self._rows("SELECT ok, at FROM login_attempts" + (" WHERE " + " AND ".join(where) if where else "")
                                + " ORDER BY id DESC LIMIT ?", (*args, limit))
        out = []
        for r in rows:
            at = from_db(r["at"])
            if at is not None:
                out.append(LoginAttempt(bool(r["ok"]), at))
        return out

    async def reserve_login_attempt(self, name: str, remote: str, now: datetime) -> int:
        cur = await self._write("INSERT INTO login_attempts (name, remote, at, ok) VALUES (?, ?, ?, 0)",
                                (name, remote, to_db(now)))
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def login_attempt_succeeded(self, attempt_id: int) -> None:
        await self._write("UPDATE login_attempts SET ok = 1 WHERE id = ?", (attempt_id,))

    async def forget_login_attempts_before(self, t: datetime) -> None:
        await self._write("DELETE FROM login_attempts WHERE at < ?", (to_db(t),))

    # -- tokens ---------------------------------------------------------------------------------

    async def create_token(self, role: str, name: str, now: datetime) -> str:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        token = f"wr_{role}_{secrets.token_urlsafe(32)}"
        await self._write("INSERT INTO tokens (name, role, hash, created_at) VALUES (?, ?, ?, ?)",
                          (name, role, hash_token(token), to_db(now)))
        return token

    async def token_role(self, token: str) -> tuple[str, str] | None:
        rows = await self._rows("SELECT role, name FROM tokens WHERE hash = ? AND revoked = 0",
                                (hash_token(token),))
        return (rows[0][0], rows[0][1]) if rows else None

    # -- outbox (notifier/store.py: OutboxTx) ------------------------------------------------------

    async def outbox_row(self, row_id: int) -> OutboxRow | None:
        rows = await self._rows(f"SELECT {_OUTBOX_COLS} FROM outbox WHERE id = ?", (row_id,))
        return _outbox_row(rows[0]) if rows else None

    async def outbox_rows(self, *, status: str | None = None, visit_id: str | None = None) -> list[OutboxRow]:
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if visit_id is not None:
            where.append("(visit_id = ? OR id IN (SELECT row_id FROM outbox_visits WHERE visit_id = ?))")
            args.extend([visit_id, visit_id])
        sql = f"SELECT {_OUTBOX_COLS} FROM outbox" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [_outbox_row(r) for r in await self._rows(sql, args)]

    async def insert_texts(self, texts: Iterable[NewText], now: datetime) -> list[int]:
        ids: list[int] = []
        for t in texts:
            told = [to_db(x) for x in t.told] if t.told else [None, None, None]
            # A text held back before any send (NewText.hold_reason) waits for reception, undated.
            held = t.hold_reason is not None
            cur = await self._write(
                "INSERT INTO outbox (dedupe_key, visit_id, kind, to_number, body, segments, status, attempts, "
                "next_attempt_at, expires_at, told_start, told_p10, told_p90, day, created_at, updated_at, "
                "error_code, error_message) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
                (t.dedupe_key, t.visit_id, t.kind, t.to_number, t.body, t.segments, "held" if held else "queued",
                 to_db(now), None if held else to_db(t.expires_at), *told, t.day.isoformat() if t.day else None,
                 to_db(now), to_db(now), HELD_IMPLAUSIBLE if held else None,
                 t.hold_reason[:500] if t.hold_reason else None),
            )
            if cur.rowcount > 0 and cur.lastrowid is not None:
                ids.append(cur.lastrowid)
                for a in t.also:
                    await self._write(
                        "INSERT INTO outbox_visits (row_id, visit_id, kind, told_start, told_p10, told_p90) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (cur.lastrowid, a.visit_id, a.kind, to_db(a.start), to_db(a.p10), to_db(a.p90)))
        return ids

    async def sent_texts(self, visit_ids: Iterable[str] | None, kinds: Iterable[str]) -> dict[str, list[SentText]]:
        kinds = list(kinds)
        marks = ','.join('?' * len(kinds))
        reached = "NOT (o.status = 'failed' AND COALESCE(o.error_code, '') = 'expired')"
        # A household's text told each of its visits (outbox_visits): each counts as texted.
        q = (f"SELECT o.visit_id, o.created_at, o.told_start, o.told_p10, o.told_p90, o.kind, {reached}, o.id "
             f"FROM outbox o WHERE o.kind IN ({marks}) AND o.told_start IS NOT NULL "
             f"UNION ALL SELECT v.visit_id, o.created_at, v.told_start, v.told_p10, v.told_p90, v.kind, {reached}, "
             f"o.id FROM outbox_visits v JOIN outbox o ON o.id = v.row_id WHERE v.kind IN ({marks}) ORDER BY 8")
        kinds = kinds + kinds
        wanted = None if visit_ids is None else set(visit_ids)
        out: dict[str, list[SentText]] = {}
        for r in await self._rows(q, kinds):
            vid = str(r[0])
            if wanted is not None and vid not in wanted:
                continue
            at, start, p10, p90 = (from_db(r[i]) for i in range(1, 5))
            assert at and start and p10 and p90
            out.setdefault(vid, []).append(SentText(at=at, start=start, p10=p10, p90=p90, kind=r[5],
                                                      reached=bool(r[6])))
        return out

    async def due_texts(self, now: datetime, limit: int) -> list[OutboxRow]:
        return [_outbox_row(r) for r in await self._rows(
            f"SELECT {_OUTBOX_COLS} FROM outbox WHERE status = 'queued' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, id LIMIT ?", (to_db(now), limit))]

    async def next_text_due_at(self) -> datetime | None:
        rows = await self._rows("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'queued'")
        return from_db(rows[0][0]) if rows and rows[0][0] else None

    async def mark_text_sending(self, row_id: int, now: datetime) -> None:
        await self._write(
            # An uncertain row keeps the time of the attempt that may have gone out: the
            # lookup searches from it, and the grace counts from it.
            "UPDATE outbox SET status = 'sending', attempts = attempts + 1 - uncertain, "
            "sending_at = CASE WHEN uncertain = 1 AND sending_at IS NOT NULL THEN sending_at ELSE ? END, "
            "updated_at = ? WHERE id = ?", (to_db(now), to_db(now), row_id))

    async def adopt_orphaned_texts(self) -> list[OutboxRow]:
        # One process sends from a SQLite file: what a stopped one left is settled at start-up.
        return []

    async def mark_text_sent(self, row_id: int, provider_sid: str, provider_status: str | None,
                             now: datetime) -> None:
        # A status callback may have beaten us here (it is a separate request): keep "delivered".
        await self._write(
            "UPDATE outbox SET status = CASE WHEN status = 'delivered' THEN status ELSE 'sent' END, "
            "provider_sid = ?, provider_status = COALESCE(provider_status, ?), uncertain = 0, "
            "error_code = NULL, error_message = NULL, updated_at = ? WHERE id = ?",
            (provider_sid, provider_status, to_db(now), row_id))

    async def mark_text_retry(self, row_id: int, now: datetime, at: datetime, code: str | None, message: str,
                              *, uncertain: bool, count_attempt: bool) -> None:
        await self._write(
            "UPDATE outbox SET status = 'queued', next_attempt_at = ?, uncertain = MAX(uncertain, ?), "
            "attempts = attempts + ?, error_code = ?, error_message = ?, updated_at = ? WHERE id = ?",
            (to_db(at), int(uncertain), int(count_attempt), code, message[:500], to_db(now), row_id))

    async def retry_waiting_texts_now(self, now: datetime, only_code: str | None) -> int:
        cur = await self._write(
            "UPDATE outbox SET next_attempt_at = ?, updated_at = ? WHERE status = 'queued' AND next_attempt_at > ? "
            "AND attempts > 0 AND COALESCE(error_code, '') != 'reconcile' AND (? IS NULL OR error_code = ?)",
            (to_db(now), to_db(now), to_db(now), only_code, only_code))
        return cur.rowcount

    async def mark_text_resending(self, row_id: int, now: datetime) -> None:
        await self._write("UPDATE outbox SET uncertain = 0, attempts = attempts + 1, sending_at = ?, updated_at = ? "
                          "WHERE id = ?", (to_db(now), to_db(now), row_id))

    async def mark_text_failed(self, row_id: int, now: datetime, code: str | None, message: str) -> None:
        await self._write(
            "UPDATE outbox SET status = 'failed', error_code = ?, error_message = ?, updated_at = ? WHERE id = ?",
            (code, message[:500], to_db(now), row_id))

    async def mark_text_held(self, row_id: int, now: datetime, message: str) -> None:
        await self._write(
            "UPDATE outbox SET status = 'held', error_code = 'unknown_if_sent', error_message = ?, updated_at = ? "
            "WHERE id = ?", (message[:500], to_db(now), row_id))

    async def set_text_status(self, row_id: int, status: str, provider_sid: str | None, provider_status: str,
                              error_code: str | None, now: datetime) -> None:
        await self._write(
            "UPDATE outbox SET status = ?, provider_sid = ?, provider_status = ?, uncertain = 0, "
            "error_code = COALESCE(?, error_code), updated_at = ? WHERE id = ?",
            (status, provider_sid, provider_status, error_code, to_db(now), row_id))

    async def requeue_text(self, row_id: int, now: datetime) -> None:
        await self._write(
            "UPDATE outbox SET status = 'queued', next_attempt_at = ?, uncertain = 0, expires_at = NULL, "
            "updated_at = ? WHERE id = ?", (to_db(now), to_db(now), row_id))

    async def dismiss_failed_text(self, row_id: int, now: datetime, settled_codes: Iterable[str]) -> bool:
        codes = list(settled_codes)
        cur = await self._write(
            f"UPDATE outbox SET error_code = 'dismissed', updated_at = ? WHERE id = ? AND status = 'failed' "
            f"AND COALESCE(error_code, '') NOT IN ({','.join('?' * len(codes))})", (to_db(now), row_id, *codes))
        return cur.rowcount > 0

    async def opted_out(self, numbers: Iterable[str]) -> set[str]:
        nums = sorted(set(numbers))
        out: set[str] = set()
        for i in range(0, len(nums), 500):  # SQLite's host-parameter limit
            chunk = nums[i:i + 500]
            q = f"SELECT number FROM opt_outs WHERE number IN ({','.join('?' * len(chunk))})"
            out |= {str(r[0]) for r in await self._rows(q, chunk)}
        return out

    async def record_opt_out(self, number: str, source: str, now: datetime, keep_kinds: Iterable[str]) -> bool:
        keep = list(keep_kinds)
        cur = await self._write(
            "INSERT INTO opt_outs (number, source, opted_out_at) VALUES (?, ?, ?) ON CONFLICT (number) DO NOTHING",
            (number, source, to_db(now)))
        new = cur.rowcount > 0
        await self._write(
            "UPDATE outbox SET status = 'failed', error_code = 'opted_out', error_message = 'the client opted out', "
            "updated_at = ? WHERE to_number = ? AND status IN ('queued', 'held') "
            f"AND kind NOT IN ({','.join('?' * len(keep)) or 'NULL'})", (to_db(now), number, *keep))
        return new

    async def texts_to_number_since(self, number: str, since: datetime, dedupe_prefix: str) -> int:
        rows = await self._rows("SELECT COUNT(*) FROM outbox WHERE to_number = ? AND created_at >= ? "
                                "AND substr(dedupe_key, 1, ?) = ?",
                                (number, to_db(since), len(dedupe_prefix), dedupe_prefix))
        return int(rows[0][0])

    async def record_opt_in(self, number: str) -> bool:
        cur = await self._write("DELETE FROM opt_outs WHERE number = ?", (number,))
        return cur.rowcount > 0

    # -- inbox, links, recovery (notifier/store.py: InboxTx) -----------------------------------------

    async def record_inbound(self, provider_sid: str, from_number: str, to_number: str | None, body: str,
                             kind: str, needs_reception: bool, now: datetime) -> bool:
        cur = await self._write(
            "INSERT INTO inbound_messages (provider_sid, from_number, to_number, body, kind, needs_reception, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (provider_sid) DO NOTHING",
            (provider_sid, from_number, to_number, body, kind, int(needs_reception), to_db(now)))
        return cur.rowcount > 0

    async def set_inbound_visit(self, provider_sid: str, visit_id: str, kind: str) -> None:
        await self._write("UPDATE inbound_messages SET visit_id = ?, kind = ? WHERE provider_sid = ?",
                          (visit_id, kind, provider_sid))

    async def record_inbound_media(self, provider_sid: str, media: Sequence[tuple[str, str]]) -> None:
        rows = await self._rows("SELECT id FROM inbound_messages WHERE provider_sid = ?", (provider_sid,))
        for n, (url, content_type) in enumerate(media):
            await self._write("INSERT OR IGNORE INTO inbound_media (inbound_id, n, url, content_type) "
                              "VALUES (?, ?, ?, ?)", (rows[0][0], n, url, content_type))

    async def inbound_media(self, inbound_ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
        """The pictures sent with these inbound texts, by inbound id, in the order sent."""
        out: dict[int, list[tuple[str, str]]] = {}
        for start in range(0, len(inbound_ids), 500):  # SQLite's limit on bound parameters
            chunk = list(inbound_ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for inbound_id, url, content_type in await self._rows(
                    f"SELECT inbound_id, url, content_type FROM inbound_media WHERE inbound_id IN ({marks}) "
                    "ORDER BY inbound_id, n", tuple(chunk)):
                out.setdefault(int(inbound_id), []).append((str(url), str(content_type)))
        return out

    async def send_inbound_to_reception(self, provider_sid: str) -> None:
        await self._write("UPDATE inbound_messages SET needs_reception = 1 WHERE provider_sid = ?", (provider_sid,))

    async def reception_inbox(self, include_handled: bool) -> list[dict[str, object]]:
        q = ("SELECT id, provider_sid, from_number, body, visit_id, received_at, handled_at FROM inbound_messages "
             "WHERE needs_reception = 1" + ("" if include_handled else " AND handled_at IS NULL") + " ORDER BY id")
        keys = ("id", "provider_sid", "from_number", "body", "visit_id", "received_at", "handled_at")
        out = []
        for r in await self._rows(q):
            d = dict(zip(keys, r, strict=True))
            d["received_at"], d["handled_at"] = from_db(d["received_at"]), from_db(d["handled_at"])
            out.append(d)
        media = await self.inbound_media([int(str(d["id"])) for d in out])
        for d in out:
            d["media"] = media.get(int(str(d["id"])), [])
        return out

    async def mark_inbound_handled(self, inbound_id: int, now: datetime) -> bool:
        cur = await self._write("UPDATE inbound_messages SET handled_at = ? WHERE id = ? AND handled_at IS NULL",
                                (to_db(now), inbound_id))
        return cur.rowcount > 0

    async def inbound_sender(self, inbound_id: int) -> tuple[str, str | None] | None:
        rows = await self._rows("SELECT from_number, visit_id FROM inbound_messages WHERE id = ?", (inbound_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    async def link_used_at(self, nonce: str) -> datetime | None:
        rows = await self._rows("SELECT used_at FROM link_uses WHERE nonce = ?", (nonce,))
        return from_db(rows[0][0]) if rows else None

    async def record_link_use(self, nonce: str, visit_id: str, now: datetime) -> None:
        await self._write("INSERT INTO link_uses (nonce, visit_id, used_at) VALUES (?, ?, ?)",
                          (nonce, visit_id, to_db(now)))

    async def record_recovery_offer(self, offer: RecoveryOffer, now: datetime) -> bool:
        cur = await self._write(
            "INSERT INTO recovery_offers (visit_id, gesture, waited_past_min, offered_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (visit_id) DO NOTHING", (offer.visit_id, offer.gesture, offer.waited_past_min, to_db(now)))
        return cur.rowcount > 0

    async def recovery_offers(self, visit_ids: list[str]) -> dict[str, RecoveryOffer]:
        if not visit_ids:
            return {}
        rows = await self._rows("SELECT visit_id, gesture, waited_past_min FROM recovery_offers "
                                f"WHERE visit_id IN ({','.join('?' * len(visit_ids))})", visit_ids)
        return {str(r[0]): RecoveryOffer(str(r[0]), str(r[1]), float(r[2])) for r in rows}

    # -- models ---------------------------------------------------------------------------------

    async def keep_model(self, data: dict[str, Any], now: datetime) -> int:
        cur = await self._write("INSERT INTO models (learned_at, data) VALUES (?, ?)", (to_db(now), json.dumps(data)))
        assert cur.lastrowid is not None
        return cur.lastrowid


_VISIT_COLUMNS = (
    "a.id, a.kind, a.vet_id, a.type_id, a.booked_min, a.scheduled, a.arrived, a.started, a.ended, "
    "a.status, a.expected_min, a.priority, COALESCE(p.name, a.pet_name) AS pet"
)


def _visit(r: aiosqlite.Row) -> Visit:
    # By position (_VISIT_COLUMNS' order): a whole day is read on every event, and a row's
    # columns by name cost twice as much.
    (vid, kind, vet, typ, booked, sched, arrived, started, ended, status, expected, priority, pet) = tuple(r)[:13]
    return Visit(
        id=vid,
        kind=kind,
        vet=vet,
        type=typ,
        booked_min=booked,
        scheduled=from_db(sched),
        arrived=from_db(arrived),
        started=from_db(started),
        ended=from_db(ended),
        noshow=status == "noshow",
        expected_min=expected,
        pet=pet,
        priority=priority,
    )


def _logged(r: aiosqlite.Row) -> LoggedEvent:
    at, recorded = from_db(r["at"]), from_db(r["recorded_at"])
    assert at is not None and recorded is not None
    return LoggedEvent(seq=int(r["seq"]), at=at, recorded_at=recorded, type=r["type"],
                       appointment=r["appointment_id"], data=json.loads(r["data"] or "{}"), actor=r["actor"],
                       vet=r["vet_id"])


_OUTBOX_COLS = ("id, dedupe_key, visit_id, kind, to_number, body, status, attempts, next_attempt_at, expires_at, "
                "uncertain, sending_at, provider_sid, provider_status, error_code, error_message, created_at")


def _outbox_row(r: aiosqlite.Row) -> OutboxRow:
    nxt, created = from_db(r["next_attempt_at"]), from_db(r["created_at"])
    assert nxt is not None and created is not None
    return OutboxRow(
        id=int(r["id"]), dedupe_key=r["dedupe_key"], visit_id=r["visit_id"], kind=r["kind"],
        to_number=r["to_number"], body=r["body"], status=r["status"], attempts=int(r["attempts"]),
        next_attempt_at=nxt, expires_at=from_db(r["expires_at"]), uncertain=bool(r["uncertain"]),
        sending_at=from_db(r["sending_at"]), provider_sid=r["provider_sid"], provider_status=r["provider_status"],
        error_code=r["error_code"], error_message=r["error_message"], created_at=created,
    )


class SqliteStore:
    """The database: open with `await SqliteStore.open(path)` (":memory:" for replay and tests)."""

    several_processes = False  # one server process per file

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        # Bumped on every committed write: lets readers cache what they derive from state.
        self.version = 0
        self._changed = asyncio.Event()
        # Writes running or waiting for the lock. Reads yield to them (`writes_settled`): a
        # write is a dozen awaited round trips to the database thread, and behind a lobby of
        # readers each one waited a whole turn of a busy event loop (posts took seconds).
        self._writes = 0
        self._no_writes = asyncio.Event()
        self._no_writes.set()
        # Run just after each COMMIT or ROLLBACK (wake the notifier, keep derived caches).
        self.after_commit: list[Callable[[], None]] = []
        self._budgets: dict[str, collections.deque[float]] = {}

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA foreign_keys = ON")
        if path != ":memory:":
            await conn.execute("PRAGMA journal_mode = WAL")
        # Events, consent and the outbox must survive a power cut once acknowledged.
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute("PRAGMA busy_timeout = 5000")
        store = cls(conn)
        await store.migrate()
        return store

    @property
    def conn(self) -> SqliteTx:
        """Raw SQL on the store's connection, outside any transaction: for this backend's own
        tests only (the architecture test keeps `.conn` out of the server and the notifier)."""
        return SqliteTx(self._conn, writable=True)

    async def close(self) -> None:
        await self._conn.close()

    async def migrate(self) -> list[str]:
        """Apply the numbered migrations not yet recorded; safe to run any number of times."""
        applied: list[str] = []
        async with self.transaction() as tx:
            conn = tx._db
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            done = {r[0] for r in await fetch(conn, "SELECT version FROM schema_migrations")}
            for version, name, sql in _migrations():
                if version in done:
                    continue
                # executescript would COMMIT our transaction: run the statements one by one.
                for stmt in _split_sql(sql):
                    await conn.execute(stmt)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, to_db(datetime.now(UTC))),
                )
                applied.append(name)
        return applied

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTx]:
        """The one write path: serialised, immediate, committed before the caller answers."""
        self._writes += 1
        self._no_writes.clear()
        try:
            async with self._lock:
                await self._conn.execute("BEGIN IMMEDIATE")
                changes = self._conn.total_changes
                tx = SqliteTx(self._conn, writable=True)
                try:
                    yield tx
                except BaseException:
                    await self._conn.execute("ROLLBACK")
                    self._ended(changed=None)
                    raise
                await self._conn.execute("COMMIT")
                self._ended(changed=self._conn.total_changes != changes)
        finally:
            self._writes -= 1
            if not self._writes:
                self._no_writes.set()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[SqliteTx]:
        yield SqliteTx(self._conn, writable=False)

    def _ended(self, changed: bool | None) -> None:
        """After COMMIT (`changed`: it wrote something) or ROLLBACK (None)."""
        if changed is None:
            # A reader may have cached what it read mid-transaction: make it stale.
            self.version += 1
            return
        # A transaction that wrote nothing (the notifier's idle polls) leaves every cache and
        # every live page as it was.
        if changed:
            self.version += 1
            # Wake every live page waiting on a change, then arm a fresh event.
            self._changed.set()
            self._changed = asyncio.Event()
        for after in self.after_commit:
            after()

    async def writes_settled(self, timeout: float) -> None:
        """Wait until no write is running or waiting for its turn, for at most `timeout` seconds.

        Readers call this first, so a write (an event, a check-in: what must be durable and
        acknowledged) makes its round trips to the database thread on a quiet event loop,
        instead of waiting for a turn of a loop busy with a lobby of readers at each one. A
        steady stream of writes holds a reader back for `timeout` at most.
        """
        if self._writes:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._no_writes.wait()

    async def wait_for_change(self, since: int, timeout: float) -> bool:
        """Wait until a write newer than version `since` commits; False on timeout."""
        if self.version != since:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def clinic(self) -> Clinic:
        async with self.read() as q:
            return await q.clinic()

    async def spend(self, key: str, window_s: float, limit: int) -> bool:
        # One server process per file: the budget lives in this process.
        window = self._budgets.setdefault(key, collections.deque())
        t = time.monotonic()
        while window and window[0] <= t - window_s:
            window.popleft()
        if len(window) >= limit:
            return False
        window.append(t)
        return True
