"""The PostgreSQL backend (issue 13): one database for a group of clinics, several server processes.

    store = await PgStore.open("postgresql://user@host/db?clinic=riverside")

A `PgStore` is one clinic's view of the database: every row carries `clinic_id` and every
statement here names it, so one clinic's store never reads or changes another's rows. The
`clinic` query parameter picks the clinic ("main" when absent); any other query parameter is
asyncpg's (unknown ones are PostgreSQL settings, e.g. `search_path=...`).

Writes: `transaction()` takes an in-process asyncio.Lock (one pooled connection waiting per
process, not one per request), then a transaction-scoped advisory lock per clinic
(`pg_advisory_xact_lock`), so the writes of one clinic are serialised across every server
process: the estimator and the text decisions (`runtime.after_change`) assume they see every
earlier write of the clinic, and events of one clinic get their sequence numbers in commit
order. Text sending claims outbox rows with `FOR UPDATE SKIP LOCKED`.

Reads: `read()` is a REPEATABLE READ, READ ONLY transaction on another pooled connection: a
consistent snapshot that never waits for the write lock.

Live updates across processes: a transaction that changed something sends `NOTIFY
waitroom_changes` (delivered at commit); every process LISTENs and, for a change of its clinic
made by another process, bumps `version`, wakes `wait_for_change` and runs `after_commit`
(the notifier worker wakes to send what the other process queued).

Times are `timestamptz` (aware UTC datetimes come back), days `date`, flags `boolean`, the
event log's data `jsonb`. Migrations: server/migrations_pg/, numbered, applied under an
advisory lock (two processes starting at once apply them once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, date, datetime, tzinfo
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

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
from server.store.pms import NewPmsWrite, PmsSyncState, PmsWrite
from server.store.reports import ReportRecovery, ReportReply, ReportText, ReportVisit, ToldRange
from server.store.sqlite import ReadOnly, hash_token
from server.timeutil import tz_from

DEFAULT_CLINIC = "main"
NOTIFY_CHANNEL = "waitroom_changes"
# The first key of the two-key advisory locks this backend takes ("wr" + 1): the second is the
# clinic's hash. Other software on the same database is unlikely to use the same first key.
LOCK_CLASS = 0x7772_0001
_MIGRATE_LOCK = 0x7772_0000
BUDGET_LOCK_CLASS = 0x7772_0002
# Every connection of a store says which process it is: "waitroom <origin>" (pg_stat_activity).
APP_NAME_PREFIX = "waitroom "


# `?clinic=*`: every clinic of the database, served by one process (PgGroup; `waitroom serve`).
GROUP = "*"


def is_postgres_url(spec: str) -> bool:
    return spec.startswith(("postgresql://", "postgres://"))


def split_url(url: str) -> tuple[str, str]:
    """(the URL asyncpg gets, the clinic id) from a `--db postgresql://...?clinic=ID` URL."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    clinic = DEFAULT_CLINIC
    rest = []
    for k, v in params:
        if k == "clinic":
            clinic = v
        else:
            rest.append((k, v))
    if not clinic or len(clinic) > 100:
        raise ValueError("the clinic= of a postgresql:// URL must be 1 to 100 characters")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment)), clinic


def _migrations() -> list[tuple[int, str, str]]:
    out = []
    for entry in resources.files("server.migrations_pg").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), name, entry.read_text()))
    return sorted(out)


_PARAM = re.compile(r"\?|@c")


def _numbered(sql: str) -> str:
    """`@c` (the clinic: always $1) and `?` (the arguments, in order) as asyncpg's $n."""
    n = 1

    def one(m: re.Match[str]) -> str:
        nonlocal n
        if m.group(0) == "@c":
            return "$1"
        n += 1
        return f"${n}"

    return _PARAM.sub(one, sql)


def _affected(status: str) -> int:
    """Rows a statement touched, from its command tag ("UPDATE 3", "INSERT 0 1")."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


def _utc(t: datetime | None) -> datetime | None:
    return None if t is None else t.astimezone(UTC)


class PgTx:
    """One transaction (or a read) of one clinic on a pooled connection: the named operations."""

    def __init__(self, conn: asyncpg.Connection, clinic_id: str, *, writable: bool, origin: str = "") -> None:
        self._db = conn
        self._c = clinic_id
        self._origin = origin  # this process (its connections' application_name): who claims a text
        self._writable = writable
        self.wrote = False  # something changed: the commit bumps the store's version

    def _need_write(self) -> None:
        if not self._writable:
            raise ReadOnly("a write through Store.read(): use Store.transaction()")

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[asyncpg.Record]:
        return list(await self._db.fetch(_numbered(sql), self._c, *params))

    async def _val(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return await self._db.fetchval(_numbered(sql), self._c, *params)

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a write; the rows it touched."""
        self._need_write()
        n = _affected(await self._db.execute(_numbered(sql), self._c, *params))
        if n:
            self.wrote = True
        return n

    async def _write_returning(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._need_write()
        got = await self._db.fetchval(_numbered(sql), self._c, *params)
        if got is not None:
            self.wrote = True
        return got

    async def _write_many(self, sql: str, rows: list[Sequence[Any]]) -> None:
        self._need_write()
        if rows:
            await self._db.executemany(_numbered(sql), [(self._c, *r) for r in rows])
            self.wrote = True

    # -- clinic ---------------------------------------------------------------------------------

    async def clinic(self) -> Clinic:
        rows = await self._rows("SELECT name, timezone, region, phone, settings FROM clinics WHERE id = @c")
        if not rows:
            return Clinic(name="Clinic", timezone="UTC")
        r = rows[0]
        return Clinic(r["name"], r["timezone"], r["region"], r["phone"], json.loads(r["settings"]))

    async def set_clinic(self, clinic: Clinic) -> None:
        tz_from(clinic.timezone)  # reject an unknown zone before it is stored
        await self._write(
            "INSERT INTO clinics (id, name, timezone, region, phone, settings, configured) "
            "VALUES (@c, ?, ?, ?, ?, ?::jsonb, true) ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
            "timezone = excluded.timezone, region = excluded.region, phone = excluded.phone, "
            "settings = excluded.settings, configured = true",
            (clinic.name, clinic.timezone, clinic.region, clinic.phone, clinic.settings_json()))

    # -- visits: the changes events make -----------------------------------------------------------

    async def has_vet(self, vet_id: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM vets WHERE clinic_id = @c AND id = ?", (vet_id,)))

    async def booked_length(self, type_id: str) -> float | None:
        got = await self._val("SELECT booked_min FROM appointment_types WHERE clinic_id = @c AND id = ?", (type_id,))
        return None if got is None else float(got)

    async def vet_unavailable_until(self, vet_id: str) -> datetime | None:
        got: datetime | None = await self._val(
            "SELECT unavailable_until FROM vet_status WHERE clinic_id = @c AND vet_id = ?", (vet_id,))
        return got

    async def set_vet_unavailable_until(self, vet_id: str, until: datetime | None) -> None:
        await self._write("INSERT INTO vet_status (clinic_id, vet_id, unavailable_until) VALUES (@c, ?, ?) "
                          "ON CONFLICT (clinic_id, vet_id) "
                          "DO UPDATE SET unavailable_until = excluded.unavailable_until",
                          (vet_id, until))

    async def count_visits(self, day: date) -> int:
        return int(await self._val(
            "SELECT COUNT(*) FROM appointments WHERE clinic_id = @c AND day = ? AND status <> 'cancelled'", (day,)))

    async def add_arrived_visit(self, visit: Visit, day: date) -> None:
        await self._write(
            "INSERT INTO appointments (clinic_id, id, kind, day, vet_id, type_id, pet_name, booked_min, expected_min, "
            "status, arrived) VALUES (@c, ?, ?, ?, ?, ?, ?, ?, ?, 'waiting', ?)",
            (visit.id, visit.kind, day, visit.vet, visit.type, visit.pet, visit.booked_min, visit.expected_min,
             visit.arrived))

    async def book_again(self, visit_id: str, new_id: str, vet_id: str, scheduled: datetime, day: date) -> None:
        await self._write(
            "INSERT INTO appointments (clinic_id, id, kind, day, vet_id, type_id, pet_id, pet_name, scheduled, "
            "booked_min, status) SELECT @c, ?, 'appointment', ?, ?, type_id, pet_id, pet_name, ?, booked_min, 'booked' "
            "FROM appointments WHERE clinic_id = @c AND id = ?", (new_id, day, vet_id, scheduled, visit_id))

    async def record_arrival(self, visit_id: str, at: datetime) -> None:
        await self._write("UPDATE appointments SET status = 'waiting', arrived = ? WHERE clinic_id = @c AND id = ?",
                          (at, visit_id))

    async def record_start(self, visit_id: str, at: datetime) -> None:
        await self._write("UPDATE appointments SET status = 'in_consult', started = ?, arrived = COALESCE(arrived, ?) "
                          "WHERE clinic_id = @c AND id = ?", (at, at, visit_id))

    async def record_end(self, visit_id: str, at: datetime) -> None:
        await self._write("UPDATE appointments SET status = 'done', ended = ? WHERE clinic_id = @c AND id = ?",
                          (at, visit_id))

    async def set_visit_status(self, visit_id: str, status: str) -> None:
        await self._write("UPDATE appointments SET status = ? WHERE clinic_id = @c AND id = ?", (status, visit_id))

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
        await self._write(f"UPDATE appointments SET {back} WHERE clinic_id = @c AND id = ?", (visit_id,))

    async def move_visit(self, visit_id: str, vet_id: str, priority: float | None) -> None:
        await self._write("UPDATE appointments SET vet_id = ?, priority = ? WHERE clinic_id = @c AND id = ?",
                          (vet_id, priority, visit_id))

    async def set_visit_priority(self, visit_id: str, priority: float | None) -> None:
        await self._write("UPDATE appointments SET priority = ? WHERE clinic_id = @c AND id = ?", (priority, visit_id))

    async def texts_paused_for(self, client_id: str | None) -> bool:
        scope, cid = ("client", client_id) if client_id else ("clinic", "")
        return bool(await self._rows("SELECT 1 FROM texts_paused WHERE clinic_id = @c AND scope = ? AND client_id = ?",
                                     (scope, cid)))

    async def pause_texts(self, client_id: str | None, at: datetime, by: str) -> None:
        scope, cid = ("client", client_id) if client_id else ("clinic", "")
        await self._write("INSERT INTO texts_paused (clinic_id, scope, client_id, paused_at, paused_by) "
                          "VALUES (@c, ?, ?, ?, ?) ON CONFLICT DO NOTHING", (scope, cid, at, by))

    async def resume_texts(self, client_id: str | None) -> None:
        scope, cid = ("client", client_id) if client_id else ("clinic", "")
        await self._write("DELETE FROM texts_paused WHERE clinic_id = @c AND scope = ? AND client_id = ?", (scope, cid))

    async def wait_in_car(self, visit_id: str, since: datetime) -> None:
        await self._write("INSERT INTO waiting_in_car (clinic_id, visit_id, since) VALUES (@c, ?, ?) "
                          "ON CONFLICT DO NOTHING", (visit_id, since))

    async def stop_waiting_in_car(self, visit_id: str) -> None:
        await self._write("DELETE FROM waiting_in_car WHERE clinic_id = @c AND visit_id = ?", (visit_id,))

    async def undone_seqs(self) -> set[int]:
        return {int(json.loads(r[0])["seq"])
                for r in await self._rows("SELECT data FROM events WHERE clinic_id = @c AND type = 'undo'")}

    async def cancel_queued_text(self, row_id: int, now: datetime, message: str) -> bool:
        return await self._write("UPDATE outbox SET status = 'failed', error_message = ?, updated_at = ? "
                                 "WHERE clinic_id = @c AND id = ? AND status = 'queued'", (message, now, row_id)) > 0

    async def reopen_inbound(self, inbound_id: int) -> None:
        await self._write("UPDATE inbound_messages SET handled_at = NULL WHERE clinic_id = @c AND id = ?",
                          (inbound_id,))

    async def forget_recovery_offer(self, visit_id: str) -> None:
        await self._write("DELETE FROM recovery_offers WHERE clinic_id = @c AND visit_id = ?", (visit_id,))

    async def add_reschedule_request(self, provider_sid: str, number: str, body: str, visit_id: str,
                                     now: datetime) -> None:
        await self._write(
            "INSERT INTO inbound_messages (clinic_id, provider_sid, from_number, body, kind, visit_id, "
            "needs_reception, received_at) VALUES (@c, ?, ?, ?, 'reschedule', ?, true, ?)",
            (provider_sid, number, body, visit_id, now))

    # -- schedule -------------------------------------------------------------------------------

    async def save_vet(self, vet_id: str, name: str) -> None:
        await self._write("INSERT INTO vets (clinic_id, id, name) VALUES (@c, ?, ?) "
                          "ON CONFLICT (clinic_id, id) DO UPDATE SET name = excluded.name", (vet_id, name))

    async def save_appointment_type(self, type_id: str, name: str, booked_min: float) -> None:
        await self._write(
            "INSERT INTO appointment_types (clinic_id, id, name, booked_min) VALUES (@c, ?, ?, ?) "
            "ON CONFLICT (clinic_id, id) DO UPDATE SET name = excluded.name, booked_min = excluded.booked_min",
            (type_id, name, booked_min))

    async def save_client(self, client_id: str, name: str, mobile: str | None, sms_consent: bool, language: str,
                          notes: str) -> None:
        await self._write(
            "INSERT INTO clients (clinic_id, id, name, mobile, sms_consent, language, notes) "
            "VALUES (@c, ?, ?, ?, ?, ?, ?) ON CONFLICT (clinic_id, id) DO UPDATE SET name = excluded.name, "
            "mobile = excluded.mobile, sms_consent = excluded.sms_consent, language = excluded.language, "
            "notes = excluded.notes", (client_id, name, mobile, sms_consent, language, notes))

    async def has_client(self, client_id: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM clients WHERE clinic_id = @c AND id = ?", (client_id,)))

    async def save_pet(self, pet_id: str, client_id: str | None, name: str, species: str | None, sex: str) -> None:
        await self._write(
            "INSERT INTO pets (clinic_id, id, client_id, name, species, sex) VALUES (@c, ?, ?, ?, ?, ?) "
            "ON CONFLICT (clinic_id, id) DO UPDATE SET client_id = excluded.client_id, name = excluded.name, "
            "species = excluded.species, sex = excluded.sex", (pet_id, client_id, name, species, sex))

    async def known_pets(self, pet_ids: Iterable[str]) -> set[str]:
        ids = sorted(set(pet_ids))
        if not ids:
            return set()
        return {str(r[0]) for r in await self._rows("SELECT id FROM pets WHERE clinic_id = @c AND id = ANY(?::text[])",
                                                    (ids,))}

    async def save_bookings(self, bookings: Iterable[BookedVisit]) -> None:
        # A re-push moves a booking that has not happened yet; it never rewrites what happened.
        await self._write_many(
            "INSERT INTO appointments (clinic_id, id, kind, day, vet_id, type_id, pet_id, pet_name, scheduled, "
            "booked_min) VALUES (@c, ?, 'appointment', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (clinic_id, id) DO UPDATE SET "
            "day = excluded.day, vet_id = excluded.vet_id, type_id = excluded.type_id, pet_id = excluded.pet_id, "
            "pet_name = excluded.pet_name, scheduled = excluded.scheduled, booked_min = excluded.booked_min "
            "WHERE appointments.status = 'booked'",
            [(b.id, b.day, b.vet, b.type, b.pet_id, b.pet_name, b.scheduled, b.booked_min) for b in bookings])

    async def save_vet_blocks(self, blocks: Iterable[VetBlock]) -> None:
        await self._write_many(
            "INSERT INTO vet_blocks (clinic_id, id, vet_id, day, start_at, end_at, reason) "
            "VALUES (@c, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (clinic_id, id) DO UPDATE SET vet_id = excluded.vet_id, day = excluded.day, "
            "start_at = excluded.start_at, end_at = excluded.end_at, reason = excluded.reason",
            [(b.id, b.vet, b.day, b.start, b.end, b.reason) for b in blocks])

    # -- the board (server/web/board.py) ----------------------------------------------------------

    async def board_visits(self, day: date) -> list[BoardVisit]:
        rows = await self._rows(
            "SELECT a.id, a.kind, a.status, a.vet_id, a.booked_min, a.scheduled, a.arrived, a.started, a.ended, "
            "a.priority, COALESCE(p.name, a.pet_name) AS pet, p.species, p.sex, c.id AS client_id, "
            "c.name AS client, c.mobile, c.sms_consent, c.notes, c.language, t.name AS type_name FROM appointments a "
            "LEFT JOIN pets p ON p.clinic_id = a.clinic_id AND p.id = a.pet_id "
            "LEFT JOIN clients c ON c.clinic_id = p.clinic_id AND c.id = p.client_id "
            "LEFT JOIN appointment_types t ON t.clinic_id = a.clinic_id AND t.id = a.type_id "
            "WHERE a.clinic_id = @c AND a.day = ? AND a.status <> 'cancelled' "
            'ORDER BY a.scheduled NULLS FIRST, a.arrived NULLS FIRST, a.id COLLATE "C"', (day,))
        return [BoardVisit(
            id=r["id"], kind=r["kind"], status=r["status"], vet=r["vet_id"], booked_min=float(r["booked_min"]),
            scheduled=_utc(r["scheduled"]), arrived=_utc(r["arrived"]), started=_utc(r["started"]),
            ended=_utc(r["ended"]), priority=r["priority"], pet=r["pet"], species=r["species"], sex=r["sex"],
            client_id=r["client_id"], client=r["client"], mobile=r["mobile"], sms_consent=bool(r["sms_consent"]),
            notes=r["notes"], language=r["language"], type_name=r["type_name"]) for r in rows]

    async def visits_waiting_in_car(self) -> set[str]:
        return {str(r[0]) for r in await self._rows("SELECT visit_id FROM waiting_in_car WHERE clinic_id = @c")}

    async def told_range_ends(self, visit_ids: list[str]) -> list[tuple[str, datetime]]:
        if not visit_ids:
            return []
        kept = [(str(r[0]), r[1]) for r in await self._rows(
            "SELECT visit_id, p90 FROM promises WHERE clinic_id = @c AND visit_id = ANY(?::text[])", (visit_ids,))]
        texted = [(str(r[0]), r[1]) for r in await self._rows(
            "SELECT visit_id, told_p90 FROM outbox WHERE clinic_id = @c AND told_p90 IS NOT NULL "
            "AND status <> 'failed' AND visit_id = ANY(?::text[]) ORDER BY id", (visit_ids,))]
        return kept + texted

    async def events_by_people(self, recorded_since: datetime, also_types: tuple[str, ...],
                               limit: int) -> list[LoggedEvent]:
        rows = await self._rows(
            f"{_EVENT_SELECT} WHERE e.clinic_id = @c AND e.recorded_at >= ? AND (e.actor LIKE 'user:%' "
            "OR e.actor LIKE 'token:%' OR e.type = ANY(?::text[])) ORDER BY e.seq DESC LIMIT ?",
            (recorded_since, list(also_types), limit))
        return [_logged(r) for r in rows]

    async def events_at_or_after(self, at: datetime, types: tuple[str, ...]) -> list[LoggedEvent]:
        if not types:
            return []
        rows = await self._rows(f"{_EVENT_SELECT} WHERE e.clinic_id = @c AND e.type = ANY(?::text[]) AND e.at >= ? "
                                "ORDER BY e.seq DESC", (list(types), at))
        return [_logged(r) for r in rows]

    async def inbox_messages(self) -> list[InboxMessage]:
        rows = await self._rows(
            "SELECT m.id, m.from_number, m.body, m.kind, m.visit_id, m.received_at, c.name AS client, "
            "COALESCE(p.name, a.pet_name) AS pet FROM inbound_messages m "
            "LEFT JOIN appointments a ON a.clinic_id = m.clinic_id AND a.id = m.visit_id "
            "LEFT JOIN pets p ON p.clinic_id = a.clinic_id AND p.id = a.pet_id "
            "LEFT JOIN clients c ON c.clinic_id = p.clinic_id AND c.id = p.client_id "
            "WHERE m.clinic_id = @c AND m.handled_at IS NULL AND (m.needs_reception OR m.kind = 'reschedule') "
            "ORDER BY m.id")
        media = await self.inbound_media([int(r["id"]) for r in rows])
        return [InboxMessage(int(r["id"]), r["from_number"], r["body"], r["kind"], r["visit_id"], r["received_at"],
                             r["client"], r["pet"], media.get(int(r["id"]), [])) for r in rows]

    async def unsettled_texts(self, since: datetime | None, row_id: int | None, settled_codes: Iterable[str],
                              cancelled_message: str) -> list[UnsettledText]:
        codes = [*settled_codes, "opted_out"]
        where, args = "", list[Any]()
        if since is not None:
            where += " AND o.created_at >= ?"
            args.append(since)
        if row_id is not None:
            where += " AND o.id = ?"
            args.append(row_id)
        rows = await self._rows(
            "SELECT o.id, o.status, o.kind, o.to_number, o.body, o.error_code, o.error_message, o.created_at, "
            "o.updated_at, o.visit_id, COALESCE(p.name, a.pet_name) AS pet, "
            "COALESCE(c.name, (SELECT name FROM clients WHERE clinic_id = @c AND mobile = o.to_number "
            'ORDER BY id COLLATE "C" LIMIT 1)) AS client, v.name AS vet, a.scheduled, '
            "EXISTS (SELECT 1 FROM opt_outs x WHERE x.clinic_id = @c AND x.number = o.to_number) AS opted_out "
            "FROM outbox o LEFT JOIN appointments a ON a.clinic_id = o.clinic_id AND a.id = o.visit_id "
            "LEFT JOIN pets p ON p.clinic_id = a.clinic_id AND p.id = a.pet_id "
            "LEFT JOIN clients c ON c.clinic_id = p.clinic_id AND c.id = p.client_id "
            "LEFT JOIN vets v ON v.clinic_id = a.clinic_id AND v.id = a.vet_id "
            f"WHERE o.clinic_id = @c AND o.status IN ('held', 'failed'){where} "
            "AND (o.status = 'held' OR (NOT (COALESCE(o.error_code, '') = ANY(?::text[])) "
            "AND COALESCE(o.error_message, '') <> ?)) ORDER BY o.id", (*args, codes, cancelled_message))
        return [UnsettledText(
            id=int(r["id"]), status=r["status"], kind=r["kind"], to_number=r["to_number"], body=r["body"],
            error_code=r["error_code"], error_message=r["error_message"], written=r["created_at"], at=r["updated_at"],
            visit_id=r["visit_id"], pet=r["pet"], client=r["client"], vet=r["vet"], scheduled=_utc(r["scheduled"]),
            opted_out=bool(r["opted_out"])) for r in rows]

    # -- visits ---------------------------------------------------------------------------------

    async def visit(self, visit_id: str) -> StoredVisit | None:
        rows = await self._rows(f"SELECT {_VISIT_COLUMNS}, a.day FROM {_VISIT_FROM} "
                                "WHERE a.clinic_id = @c AND a.id = ?", (visit_id,))
        return StoredVisit(_visit(rows[0]), rows[0]["status"], rows[0]["day"]) if rows else None

    async def visits_for_day(self, day: date) -> DayState:
        vets: list[str] = []
        away: dict[str, datetime] = {}
        for r in await self._rows("SELECT v.id, s.unavailable_until FROM vets v LEFT JOIN vet_status s "
                                  "ON s.clinic_id = v.clinic_id AND s.vet_id = v.id WHERE v.clinic_id = @c "
                                  'ORDER BY v.id COLLATE "C"'):
            vets.append(r[0])
            if r[1] is not None:
                away[r[0]] = r[1].astimezone(UTC)
        rows = await self._rows(
            f"SELECT {_VISIT_COLUMNS} FROM {_VISIT_FROM} WHERE a.clinic_id = @c AND a.day = ? "
            "AND a.status <> 'cancelled' ORDER BY a.scheduled NULLS FIRST, a.arrived NULLS FIRST, a.id COLLATE \"C\"",
            (day,))
        visits = {r["id"]: _visit(r) for r in rows}
        blocks: dict[str, list[tuple[datetime, datetime]]] = {}
        for r in await self._rows("SELECT vet_id, start_at, end_at FROM vet_blocks WHERE clinic_id = @c AND day = ? "
                                  'ORDER BY start_at, id COLLATE "C"', (day,)):
            blocks.setdefault(r[0], []).append((r[1], r[2]))
        return DayState(vets=vets, visits=visits, vet_unavailable_until=away, blocks=blocks)

    async def finished_visits_before(self, day: date) -> list[Visit]:
        rows = await self._rows(
            f"SELECT {_VISIT_COLUMNS} FROM {_VISIT_FROM} WHERE a.clinic_id = @c AND a.day < ? "
            "AND a.status IN ('done', 'noshow') ORDER BY a.day, a.scheduled NULLS FIRST, a.arrived NULLS FIRST", (day,))
        return [_visit(r) for r in rows]

    async def booked_lengths(self) -> dict[str, float]:
        return {r[0]: float(r[1])
                for r in await self._rows("SELECT id, booked_min FROM appointment_types WHERE clinic_id = @c")}

    async def add_history(self, visits: Iterable[Visit], tz: tzinfo) -> int:
        self._need_write()
        known = {r[0] for r in await self._rows("SELECT id FROM appointment_types WHERE clinic_id = @c")}
        new_types: dict[str, float] = {}
        rows: list[Sequence[Any]] = []
        for v in visits:
            if v.type is not None and v.type not in known and v.kind != "emergency":
                new_types.setdefault(v.type, v.booked_min)
            when = v.scheduled or v.arrived or v.started
            if when is None:
                continue
            status = "noshow" if v.noshow or (v.kind == "appointment" and v.arrived is None) else "done"
            rows.append((v.id, v.kind, when.astimezone(tz).date(), v.vet,
                         v.type if (v.type in known or v.type in new_types) else None, v.pet, v.scheduled,
                         v.booked_min, v.expected_min, status, v.arrived, v.started, v.ended))
        await self._write_many("INSERT INTO appointment_types (clinic_id, id, name, booked_min) VALUES (@c, ?, ?, ?)",
                               [(t, t, b) for t, b in new_types.items()])
        await self._write_many(
            "INSERT INTO appointments (clinic_id, id, kind, day, vet_id, type_id, pet_name, scheduled, booked_min, "
            "expected_min, status, arrived, started, ended) VALUES (@c, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING", rows)
        return len(rows)

    async def last_event_seq(self) -> int:
        return int(await self._val("SELECT COALESCE(MAX(seq), 0) FROM events WHERE clinic_id = @c"))

    async def record_event(self, type: str, at: datetime, appointment: str | None, data: dict[str, Any],
                           actor: str, now: datetime) -> int:
        return int(await self._write_returning(
            "INSERT INTO events (clinic_id, at, recorded_at, type, appointment_id, data, actor) "
            "VALUES (@c, ?, ?, ?, ?, ?::jsonb, ?) RETURNING seq",
            (at, now, type, appointment, json.dumps(data), actor)))

    async def event(self, seq: int) -> LoggedEvent | None:
        rows = await self._rows(f"{_EVENT_SELECT} WHERE e.clinic_id = @c AND e.seq = ?", (seq,))
        return _logged(rows[0]) if rows else None

    async def events_since(self, seq: int, *, types: tuple[str, ...] | None = None,
                           limit: int | None = None) -> list[LoggedEvent]:
        where, args = "e.clinic_id = @c AND e.seq > ?", list[Any]([seq])
        if types is not None:
            where += " AND e.type = ANY(?::text[])"
            args.append(list(types))
        sql = f"{_EVENT_SELECT} WHERE {where} ORDER BY e.seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_logged(r) for r in await self._rows(sql, args)]

    # -- texting ---------------------------------------------------------------------------------

    async def texts_paused(self) -> TextsPaused:
        rows = await self._rows("SELECT scope, client_id FROM texts_paused WHERE clinic_id = @c")
        return TextsPaused(clinic=any(r[0] == "clinic" for r in rows),
                           clients=frozenset(r[1] for r in rows if r[0] == "client"))

    async def text_contacts(self, visit_ids: list[str]) -> dict[str, TextContact]:
        if not visit_ids:
            return {}
        rows = await self._rows(
            "SELECT a.id, p.name AS pet, p.sex, c.id AS client, c.mobile, c.sms_consent, c.language, "
            "v.name AS vet, pr.p10 AS told_p10, pr.p90 AS told_p90 FROM appointments a "
            "LEFT JOIN pets p ON p.clinic_id = a.clinic_id AND p.id = a.pet_id "
            "LEFT JOIN clients c ON c.clinic_id = p.clinic_id AND c.id = p.client_id "
            "JOIN vets v ON v.clinic_id = a.clinic_id AND v.id = a.vet_id "
            "LEFT JOIN promises pr ON pr.clinic_id = a.clinic_id AND pr.visit_id = a.id "
            "WHERE a.clinic_id = @c AND a.id = ANY(?::text[])", (list(visit_ids),))
        return {r["id"]: TextContact(
            visit_id=r["id"], client=r["client"], mobile=r["mobile"], sms_consent=bool(r["sms_consent"]),
            language=r["language"] or "en", pet=r["pet"], pet_sex=r["sex"], vet_name=r["vet"],
            told_p10=_utc(r["told_p10"]), told_p90=_utc(r["told_p90"])) for r in rows}

    async def keep_first_promises(self, promised: dict[str, Estimate], now: datetime) -> None:
        await self._write_many(
            "INSERT INTO promises (clinic_id, visit_id, start, p10, p90, at) VALUES (@c, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING", [(vid, e.start, e.p10, e.p90, now) for vid, e in promised.items()])

    async def texts_told_after(self, row_id: int) -> list[ToldText]:
        return [ToldText(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in await self._rows(
            "SELECT id, visit_id, created_at, told_start, told_p10, told_p90 FROM outbox WHERE clinic_id = @c "
            "AND id > ? AND told_start IS NOT NULL ORDER BY id", (row_id,))]

    async def waiting_in_car(self, visit_id: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM waiting_in_car WHERE clinic_id = @c AND visit_id = ?", (visit_id,)))

    # -- clients --------------------------------------------------------------------------------

    async def open_visits_for_mobile(self, mobile: str, day: date) -> list[MobileVisit]:
        rows = await self._rows(
            f"SELECT a.id, c.language FROM {_VISIT_CLIENT} WHERE a.clinic_id = @c AND c.mobile = ? AND a.day = ? "
            "AND a.status IN ('booked', 'waiting') ORDER BY a.scheduled NULLS FIRST", (mobile, day))
        return [MobileVisit(r[0], r[1] or "en") for r in rows]

    async def booking_detail(self, visit_id: str) -> BookingDetail | None:
        rows = await self._rows(
            "SELECT a.id, a.status, a.day, a.vet_id, v.name AS vet_name, COALESCE(p.name, a.pet_name) AS pet, "
            "t.name AS type_name, a.booked_min, a.scheduled, c.mobile, c.sms_consent, c.language FROM appointments a "
            "JOIN vets v ON v.clinic_id = a.clinic_id AND v.id = a.vet_id "
            "LEFT JOIN pets p ON p.clinic_id = a.clinic_id AND p.id = a.pet_id "
            "LEFT JOIN clients c ON c.clinic_id = p.clinic_id AND c.id = p.client_id "
            "LEFT JOIN appointment_types t ON t.clinic_id = a.clinic_id AND t.id = a.type_id "
            "WHERE a.clinic_id = @c AND a.id = ?", (visit_id,))
        if not rows:
            return None
        r = rows[0]
        return BookingDetail(r["id"], r["status"], r["day"], r["vet_id"], r["vet_name"], r["pet"], r["type_name"],
                             float(r["booked_min"]), _utc(r["scheduled"]), r["mobile"], bool(r["sms_consent"]),
                             r["language"] or "en")

    async def vet_names(self) -> dict[str, str]:
        return {r[0]: r[1]
                for r in await self._rows('SELECT id, name FROM vets WHERE clinic_id = @c ORDER BY id COLLATE "C"')}

    async def booked_times(self, first: date, last: date, statuses: tuple[str, ...]
                           ) -> list[tuple[str, datetime, float]]:
        return [(r[0], r[1], float(r[2])) for r in await self._rows(
            "SELECT vet_id, scheduled, booked_min FROM appointments WHERE clinic_id = @c AND day BETWEEN ? AND ? "
            "AND scheduled IS NOT NULL AND status = ANY(?::text[])", (first, last, list(statuses)))]

    async def vets_away(self) -> dict[str, datetime]:
        return {r[0]: r[1] for r in await self._rows(
            "SELECT vet_id, unavailable_until FROM vet_status WHERE clinic_id = @c AND unavailable_until IS NOT NULL")}

    async def blocked_times(self, first: date, last: date) -> list[tuple[str, datetime, datetime, str]]:
        return [(r[0], r[1], r[2], r[3]) for r in await self._rows(
            "SELECT vet_id, start_at, end_at, reason FROM vet_blocks WHERE clinic_id = @c AND day BETWEEN ? AND ? "
            'ORDER BY start_at, id COLLATE "C"', (first, last))]

    async def kiosk_bookings(self, mobile: str, day: date) -> list[KioskBooking]:
        rows = await self._rows(
            "SELECT a.id, a.status, a.scheduled, p.name AS pet, p.sex, p.species, v.name AS vet, c.sms_consent, "
            f"c.id AS client FROM {_VISIT_CLIENT} JOIN vets v ON v.clinic_id = a.clinic_id AND v.id = a.vet_id "
            "WHERE a.clinic_id = @c AND c.mobile = ? AND a.day = ? AND a.kind = 'appointment' "
            "AND a.status IN ('booked', 'waiting') ORDER BY a.scheduled NULLS FIRST", (mobile, day))
        return [KioskBooking(r["id"], r["status"], _utc(r["scheduled"]), r["pet"], r["sex"], r["species"], r["vet"],
                             bool(r["sms_consent"]), r["client"]) for r in rows]

    async def set_sms_consent(self, client_id: str, consent: bool) -> None:
        await self._write("UPDATE clients SET sms_consent = ? WHERE clinic_id = @c AND id = ?", (consent, client_id))

    async def add_walkin_client(self, client_id: str, name: str, mobile: str | None, pet_id: str, pet_name: str,
                                species: str) -> None:
        await self._write("INSERT INTO clients (clinic_id, id, name, mobile, sms_consent) VALUES (@c, ?, ?, ?, false)",
                          (client_id, name, mobile))
        await self._write("INSERT INTO pets (clinic_id, id, client_id, name, species, sex) "
                          "VALUES (@c, ?, ?, ?, ?, 'unknown')", (pet_id, client_id, pet_name, species))

    async def link_visit_to_pet(self, visit_id: str, pet_id: str) -> None:
        await self._write("UPDATE appointments SET pet_id = ? WHERE clinic_id = @c AND id = ?", (pet_id, visit_id))

    async def checked_in_here(self, visit_id: str, actor: str) -> bool:
        return bool(await self._rows(
            "SELECT 1 FROM events WHERE clinic_id = @c AND appointment_id = ? AND actor = ? "
            "AND type IN ('checkin', 'walkin') AND (data ->> 'by_phone') IS NULL", (visit_id, actor)))

    async def remembered_answer(self, key: str) -> list[str] | None:
        got = await self._val("SELECT response FROM idempotency WHERE clinic_id = @c AND key = ?", (key,))
        return None if got is None else list(json.loads(got)["visits"])

    async def remember_answer(self, key: str, visits: list[str], now: datetime) -> None:
        await self._write("INSERT INTO idempotency (clinic_id, key, response, created_at) VALUES (@c, ?, ?::jsonb, ?)",
                          (key, json.dumps({"visits": visits}), now))

    async def visit_contact(self, visit_id: str) -> VisitContact | None:
        rows = await self._rows(
            "SELECT a.id, a.kind, a.status, a.vet_id, COALESCE(p.name, a.pet_name) AS pet, c.id AS client_id, "
            "c.name AS client, c.mobile, c.sms_consent, c.notes, p.sex, p.species FROM appointments a "
            "LEFT JOIN pets p ON p.clinic_id = a.clinic_id AND p.id = a.pet_id "
            "LEFT JOIN clients c ON c.clinic_id = p.clinic_id AND c.id = p.client_id "
            "WHERE a.clinic_id = @c AND a.id = ?", (visit_id,))
        if not rows:
            return None
        r = rows[0]
        return VisitContact(r["id"], r["kind"], r["status"], r["vet_id"], r["pet"], r["client_id"], r["client"],
                            r["mobile"], bool(r["sms_consent"]), r["notes"], r["sex"], r["species"])

    async def vet_name(self, vet_id: str) -> str | None:
        got = await self._val("SELECT name FROM vets WHERE clinic_id = @c AND id = ?", (vet_id,))
        return None if got is None else str(got)

    async def client_language(self, visit_id: str) -> str | None:
        rows = await self._rows(
            "SELECT c.language FROM appointments a LEFT JOIN pets p ON p.clinic_id = a.clinic_id AND p.id = a.pet_id "
            "LEFT JOIN clients c ON c.clinic_id = p.clinic_id AND c.id = p.client_id "
            "WHERE a.clinic_id = @c AND a.id = ?", (visit_id,))
        return rows[0][0] if rows else None

    async def erase_contacts_last_seen_before(self, day: date) -> list[str]:
        rows = await self._rows(
            "SELECT id FROM clients WHERE clinic_id = @c AND (mobile IS NOT NULL OR notes <> '') AND id IN ("
            "  SELECT p.client_id FROM pets p JOIN appointments a ON a.clinic_id = p.clinic_id AND a.pet_id = p.id"
            "  WHERE p.clinic_id = @c GROUP BY p.client_id HAVING MAX(a.day) < ?)", (day,))
        ids = sorted(str(r[0]) for r in rows)
        await self._write("UPDATE clients SET mobile = NULL, notes = '', sms_consent = false "
                          "WHERE clinic_id = @c AND id = ANY(?::text[])", (ids,))
        return ids

    # -- staff ----------------------------------------------------------------------------------

    async def staff_name_taken(self, name: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM staff_users WHERE clinic_id = @c AND lower(name) = lower(?)",
                                     (name,)))

    async def add_staff_user(self, name: str, password_hash: str, now: datetime, *,
                             group_admin: bool = False) -> None:
        user_id = await self._write_returning(
            "INSERT INTO staff_users (clinic_id, name, password_hash, created_at) VALUES (@c, ?, ?, ?) RETURNING id",
            (name, password_hash, now))
        if group_admin:  # kept with this clinic's accounts, and valid at every clinic of the group
            await self._write("INSERT INTO group_admins (user_id, created_at) SELECT id, ? FROM staff_users "
                              "WHERE clinic_id = @c AND id = ?", (now, user_id))

    async def staff_password(self, name: str) -> tuple[int, str] | None:
        # The clinic's own account first; else a group admin's (an account of the group, migration 0005).
        rows = await self._rows(
            "SELECT u.id, u.password_hash FROM staff_users u WHERE lower(u.name) = lower(?) AND NOT u.disabled "
            "AND (u.clinic_id = @c OR u.id IN (SELECT user_id FROM group_admins)) "
            "ORDER BY (u.clinic_id = @c) DESC, u.id LIMIT 1", (name,))
        return (int(rows[0][0]), rows[0][1]) if rows else None

    async def staff_session(self, token_hash: str) -> StaffSession | None:
        # A session belongs to the clinic it was opened at (s.clinic_id): a cookie carried to
        # another clinic's address opens nothing there, a group admin's included.
        rows = await self._rows(
            "SELECT u.id, u.name, s.csrf, s.expires_at, g.user_id IS NOT NULL AS group_admin FROM staff_sessions s "
            "JOIN staff_users u ON u.id = s.user_id LEFT JOIN group_admins g ON g.user_id = u.id "
            "WHERE s.clinic_id = @c AND (u.clinic_id = @c OR g.user_id IS NOT NULL) AND s.token_hash = ? "
            "AND NOT u.disabled", (token_hash,))
        if not rows:
            return None
        return StaffSession(int(rows[0]["id"]), rows[0]["name"], rows[0]["csrf"], rows[0]["expires_at"],
                            bool(rows[0]["group_admin"]))

    async def open_staff_session(self, token_hash: str, user_id: int, csrf: str, now: datetime,
                                 expires_at: datetime) -> None:
        await self._write("INSERT INTO staff_sessions (clinic_id, token_hash, user_id, csrf, created_at, expires_at) "
                          "VALUES (@c, ?, ?, ?, ?, ?)", (token_hash, user_id, csrf, now, expires_at))

    async def close_staff_session(self, token_hash: str) -> None:
        await self._write("DELETE FROM staff_sessions WHERE clinic_id = @c AND token_hash = ?", (token_hash,))

    async def login_attempts(self, *, name: str | None, remote: str | None, limit: int) -> list[LoginAttempt]:
        where, args = ["clinic_id = @c"], list[Any]()
        if name is not None:
            where.append("lower(name) = lower(?)")
            args.append(name)
        if remote is not None:
            where.append("remote = ?")
            args.append(remote)
        rows = await self._rows(f"SELECT ok, at FROM login_attempts WHERE {' AND '.join(where)} "
                                "ORDER BY id DESC LIMIT ?", (*args, limit))
        return [LoginAttempt(bool(r["ok"]), r["at"]) for r in rows]

    async def reserve_login_attempt(self, name: str, remote: str, now: datetime) -> int:
        return int(await self._write_returning(
            "INSERT INTO login_attempts (clinic_id, name, remote, at, ok) VALUES (@c, ?, ?, ?, false) RETURNING id",
            (name, remote, now)))

    async def login_attempt_succeeded(self, attempt_id: int) -> None:
        await self._write("UPDATE login_attempts SET ok = true WHERE clinic_id = @c AND id = ?", (attempt_id,))

    async def forget_login_attempts_before(self, t: datetime) -> None:
        await self._write("DELETE FROM login_attempts WHERE clinic_id = @c AND at < ?", (t,))

    # -- tokens ---------------------------------------------------------------------------------

    async def create_token(self, role: str, name: str, now: datetime) -> str:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        token = f"wr_{role}_{secrets.token_urlsafe(32)}"
        await self._write("INSERT INTO tokens (clinic_id, name, role, hash, created_at) VALUES (@c, ?, ?, ?, ?)",
                          (name, role, hash_token(token), now))
        return token

    async def token_role(self, token: str) -> tuple[str, str] | None:
        rows = await self._rows("SELECT role, name FROM tokens WHERE clinic_id = @c AND hash = ? AND NOT revoked",
                                (hash_token(token),))
        return (rows[0][0], rows[0][1]) if rows else None

    # -- models ---------------------------------------------------------------------------------

    async def keep_model(self, data: dict[str, Any], now: datetime) -> int:
        return int(await self._write_returning(
            "INSERT INTO models (clinic_id, learned_at, data) VALUES (@c, ?, ?::jsonb) RETURNING id",
            (now, json.dumps(data))))

    # -- outbox (notifier/store.py: OutboxTx) ------------------------------------------------------

    async def outbox_row(self, row_id: int) -> OutboxRow | None:
        rows = await self._rows(f"SELECT {_OUTBOX_COLS} FROM outbox WHERE clinic_id = @c AND id = ?", (row_id,))
        return _outbox_row(rows[0]) if rows else None

    async def outbox_rows(self, *, status: str | None = None, visit_id: str | None = None) -> list[OutboxRow]:
        where, args = ["clinic_id = @c"], list[Any]()
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if visit_id is not None:
            where.append("(visit_id = ? OR id IN (SELECT row_id FROM outbox_visits WHERE clinic_id = @c "
                         "AND visit_id = ?))")
            args.extend([visit_id, visit_id])
        sql = f"SELECT {_OUTBOX_COLS} FROM outbox WHERE {' AND '.join(where)} ORDER BY id"
        return [_outbox_row(r) for r in await self._rows(sql, args)]

    async def insert_texts(self, texts: Iterable[NewText], now: datetime) -> list[int]:
        ids: list[int] = []
        for t in texts:
            told = list(t.told) if t.told else [None, None, None]
            held = t.hold_reason is not None
            row_id = await self._write_returning(
                "INSERT INTO outbox (clinic_id, dedupe_key, visit_id, kind, to_number, body, segments, status, "
                "attempts, next_attempt_at, expires_at, told_start, told_p10, told_p90, day, created_at, updated_at, "
                "error_code, error_message) VALUES (@c, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (clinic_id, dedupe_key) DO NOTHING RETURNING id",
                (t.dedupe_key, t.visit_id, t.kind, t.to_number, t.body, t.segments, "held" if held else "queued",
                 now, None if held else t.expires_at, *told, t.day, now, now, HELD_IMPLAUSIBLE if held else None,
                 t.hold_reason[:500] if t.hold_reason else None))
            if row_id is not None:
                ids.append(int(row_id))
                for a in t.also:
                    await self._write(
                        "INSERT INTO outbox_visits (clinic_id, row_id, visit_id, kind, told_start, told_p10, told_p90) "
                        "VALUES (@c, ?, ?, ?, ?, ?, ?)", (row_id, a.visit_id, a.kind, a.start, a.p10, a.p90))
        return ids

    async def sent_texts(self, visit_ids: Iterable[str] | None, kinds: Iterable[str]) -> dict[str, list[SentText]]:
        reached = "NOT (o.status = 'failed' AND COALESCE(o.error_code, '') = 'expired')"
        q = (f"SELECT o.visit_id, o.created_at, o.told_start, o.told_p10, o.told_p90, o.kind, {reached}, o.id "
             "FROM outbox o WHERE o.clinic_id = @c AND o.kind = ANY(?::text[]) AND o.told_start IS NOT NULL "
             f"UNION ALL SELECT v.visit_id, o.created_at, v.told_start, v.told_p10, v.told_p90, v.kind, {reached}, "
             "o.id FROM outbox_visits v JOIN outbox o ON o.id = v.row_id WHERE v.clinic_id = @c "
             "AND v.kind = ANY(?::text[]) ORDER BY 8")
        kinds = list(kinds)
        wanted = None if visit_ids is None else set(visit_ids)
        out: dict[str, list[SentText]] = {}
        for r in await self._rows(q, (kinds, kinds)):
            vid = str(r[0])
            if wanted is not None and vid not in wanted:
                continue
            out.setdefault(vid, []).append(SentText(at=r[1], start=r[2], p10=r[3], p90=r[4], kind=r[5],
                                                      reached=bool(r[6])))
        return out

    async def due_texts(self, now: datetime, limit: int) -> list[OutboxRow]:
        # SKIP LOCKED: a row another process has claimed (and not yet committed as `sending`)
        # is left to it, never waited for and never claimed twice.
        return [_outbox_row(r) for r in await self._rows(
            f"SELECT {_OUTBOX_COLS} FROM outbox WHERE clinic_id = @c AND status = 'queued' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, id LIMIT ?" + (" FOR UPDATE SKIP LOCKED" if self._writable else ""),
            (now, limit))]

    async def next_text_due_at(self) -> datetime | None:
        got: datetime | None = await self._val(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE clinic_id = @c AND status = 'queued'")
        return got

    async def mark_text_sending(self, row_id: int, now: datetime) -> None:
        await self._write(
            "UPDATE outbox SET status = 'sending', attempts = attempts + CASE WHEN uncertain THEN 0 ELSE 1 END, "
            "sending_at = CASE WHEN uncertain AND sending_at IS NOT NULL THEN sending_at ELSE ? END, "
            "updated_at = ?, claimed_by = ? WHERE clinic_id = @c AND id = ?", (now, now, self._origin, row_id))

    async def adopt_orphaned_texts(self) -> list[OutboxRow]:
        # A claimer is alive while any connection of its process is: every connection of a
        # store carries its origin as application_name. The clinic's lock (held by this
        # transaction) makes each orphan one process's only.
        self._need_write()
        rows = await self._rows(
            f"UPDATE outbox o SET claimed_by = ? WHERE o.clinic_id = @c AND o.status = 'sending' "
            "AND o.claimed_by IS DISTINCT FROM ? AND NOT EXISTS (SELECT 1 FROM pg_stat_activity s "
            "WHERE s.application_name = ? || COALESCE(o.claimed_by, '')) "
            f"RETURNING {', '.join('o.' + c.strip() for c in _OUTBOX_COLS.split(','))}",
            (self._origin, self._origin, APP_NAME_PREFIX))
        if rows:
            self.wrote = True
        return sorted((_outbox_row(r) for r in rows), key=lambda r: r.id)

    async def mark_text_sent(self, row_id: int, provider_sid: str, provider_status: str | None,
                             now: datetime) -> None:
        await self._write(
            "UPDATE outbox SET status = CASE WHEN status = 'delivered' THEN status ELSE 'sent' END, "
            "provider_sid = ?, provider_status = COALESCE(provider_status, ?), uncertain = false, "
            "error_code = NULL, error_message = NULL, updated_at = ? WHERE clinic_id = @c AND id = ?",
            (provider_sid, provider_status, now, row_id))

    async def mark_text_retry(self, row_id: int, now: datetime, at: datetime, code: str | None, message: str,
                              *, uncertain: bool, count_attempt: bool) -> None:
        await self._write(
            "UPDATE outbox SET status = 'queued', next_attempt_at = ?, uncertain = (uncertain OR ?), "
            "attempts = attempts + ?, error_code = ?, error_message = ?, updated_at = ? "
            "WHERE clinic_id = @c AND id = ?",
            (at, uncertain, int(count_attempt), code, message[:500], now, row_id))

    async def retry_waiting_texts_now(self, now: datetime, only_code: str | None) -> int:
        return await self._write(
            "UPDATE outbox SET next_attempt_at = ?, updated_at = ? WHERE clinic_id = @c AND status = 'queued' "
            "AND next_attempt_at > ? AND attempts > 0 AND COALESCE(error_code, '') <> 'reconcile' "
            "AND (?::text IS NULL OR error_code = ?)", (now, now, now, only_code, only_code))

    async def mark_text_resending(self, row_id: int, now: datetime) -> None:
        await self._write("UPDATE outbox SET uncertain = false, attempts = attempts + 1, sending_at = ?, "
                          "updated_at = ? WHERE clinic_id = @c AND id = ?", (now, now, row_id))

    async def mark_text_failed(self, row_id: int, now: datetime, code: str | None, message: str) -> None:
        await self._write("UPDATE outbox SET status = 'failed', error_code = ?, error_message = ?, updated_at = ? "
                          "WHERE clinic_id = @c AND id = ?", (code, message[:500], now, row_id))

    async def mark_text_held(self, row_id: int, now: datetime, message: str) -> None:
        await self._write("UPDATE outbox SET status = 'held', error_code = 'unknown_if_sent', error_message = ?, "
                          "updated_at = ? WHERE clinic_id = @c AND id = ?", (message[:500], now, row_id))

    async def set_text_status(self, row_id: int, status: str, provider_sid: str | None, provider_status: str,
                              error_code: str | None, now: datetime) -> None:
        await self._write(
            "UPDATE outbox SET status = ?, provider_sid = ?, provider_status = ?, uncertain = false, "
            "error_code = COALESCE(?, error_code), updated_at = ? WHERE clinic_id = @c AND id = ?",
            (status, provider_sid, provider_status, error_code, now, row_id))

    async def requeue_text(self, row_id: int, now: datetime) -> None:
        await self._write("UPDATE outbox SET status = 'queued', next_attempt_at = ?, uncertain = false, "
                          "expires_at = NULL, updated_at = ? WHERE clinic_id = @c AND id = ?", (now, now, row_id))

    async def dismiss_failed_text(self, row_id: int, now: datetime, settled_codes: Iterable[str]) -> bool:
        return await self._write(
            "UPDATE outbox SET error_code = 'dismissed', updated_at = ? WHERE clinic_id = @c AND id = ? "
            "AND status = 'failed' AND NOT (COALESCE(error_code, '') = ANY(?::text[]))",
            (now, row_id, list(settled_codes))) > 0

    async def opted_out(self, numbers: Iterable[str]) -> set[str]:
        nums = sorted(set(numbers))
        if not nums:
            return set()
        return {str(r[0]) for r in await self._rows(
            "SELECT number FROM opt_outs WHERE clinic_id = @c AND number = ANY(?::text[])", (nums,))}

    async def record_opt_out(self, number: str, source: str, now: datetime, keep_kinds: Iterable[str]) -> bool:
        new = await self._write("INSERT INTO opt_outs (clinic_id, number, source, opted_out_at) VALUES (@c, ?, ?, ?) "
                                "ON CONFLICT DO NOTHING", (number, source, now)) > 0
        await self._write(
            "UPDATE outbox SET status = 'failed', error_code = 'opted_out', error_message = 'the client opted out', "
            "updated_at = ? WHERE clinic_id = @c AND to_number = ? AND status IN ('queued', 'held') "
            "AND NOT (kind = ANY(?::text[]))", (now, number, list(keep_kinds)))
        return new

    async def texts_to_number_since(self, number: str, since: datetime, dedupe_prefix: str) -> int:
        return int(await self._val(
            "SELECT COUNT(*) FROM outbox WHERE clinic_id = @c AND to_number = ? AND created_at >= ? "
            "AND left(dedupe_key, ?) = ?", (number, since, len(dedupe_prefix), dedupe_prefix)))

    async def record_opt_in(self, number: str) -> bool:
        return await self._write("DELETE FROM opt_outs WHERE clinic_id = @c AND number = ?", (number,)) > 0

    # -- inbox, links, recovery (notifier/store.py: InboxTx) -----------------------------------------

    async def record_inbound(self, provider_sid: str, from_number: str, to_number: str | None, body: str,
                             kind: str, needs_reception: bool, now: datetime) -> bool:
        return await self._write(
            "INSERT INTO inbound_messages (clinic_id, provider_sid, from_number, to_number, body, kind, "
            "needs_reception, received_at) VALUES (@c, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (provider_sid, from_number, to_number, body, kind, needs_reception, now)) > 0

    async def set_inbound_visit(self, provider_sid: str, visit_id: str, kind: str) -> None:
        await self._write("UPDATE inbound_messages SET visit_id = ?, kind = ? "
                          "WHERE clinic_id = @c AND provider_sid = ?",
                          (visit_id, kind, provider_sid))

    async def record_inbound_media(self, provider_sid: str, media: Sequence[tuple[str, str]]) -> None:
        inbound_id = await self._val("SELECT id FROM inbound_messages WHERE clinic_id = @c AND provider_sid = ?",
                                     (provider_sid,))
        for n, (url, content_type) in enumerate(media):
            await self._write("INSERT INTO inbound_media (clinic_id, inbound_id, n, url, content_type) "
                              "VALUES (@c, ?, ?, ?, ?) ON CONFLICT DO NOTHING", (inbound_id, n, url, content_type))

    async def inbound_media(self, inbound_ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
        """The pictures sent with these inbound texts, by inbound id, in the order sent."""
        out: dict[int, list[tuple[str, str]]] = {}
        if not inbound_ids:
            return out
        for inbound_id, url, content_type in await self._rows(
                "SELECT inbound_id, url, content_type FROM inbound_media WHERE clinic_id = @c "
                "AND inbound_id = ANY(?::bigint[]) ORDER BY inbound_id, n", (list(inbound_ids),)):
            out.setdefault(int(inbound_id), []).append((str(url), str(content_type)))
        return out

    async def send_inbound_to_reception(self, provider_sid: str) -> None:
        await self._write("UPDATE inbound_messages SET needs_reception = true "
                          "WHERE clinic_id = @c AND provider_sid = ?",
                          (provider_sid,))

    async def reception_inbox(self, include_handled: bool) -> list[dict[str, object]]:
        q = ("SELECT id, provider_sid, from_number, body, visit_id, received_at, handled_at FROM inbound_messages "
             "WHERE clinic_id = @c AND needs_reception" + ("" if include_handled else " AND handled_at IS NULL")
             + " ORDER BY id")
        keys = ("id", "provider_sid", "from_number", "body", "visit_id", "received_at", "handled_at")
        out: list[dict[str, object]] = [dict(zip(keys, r, strict=True)) for r in await self._rows(q)]
        for d in out:
            d["id"] = int(str(d["id"]))
        media = await self.inbound_media([int(str(d["id"])) for d in out])
        for d in out:
            d["media"] = media.get(int(str(d["id"])), [])
        return out

    async def mark_inbound_handled(self, inbound_id: int, now: datetime) -> bool:
        return await self._write("UPDATE inbound_messages SET handled_at = ? WHERE clinic_id = @c AND id = ? "
                                 "AND handled_at IS NULL", (now, inbound_id)) > 0

    async def inbound_sender(self, inbound_id: int) -> tuple[str, str | None] | None:
        rows = await self._rows("SELECT from_number, visit_id FROM inbound_messages WHERE clinic_id = @c AND id = ?",
                                (inbound_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    async def link_used_at(self, nonce: str) -> datetime | None:
        got: datetime | None = await self._val("SELECT used_at FROM link_uses WHERE clinic_id = @c AND nonce = ?",
                                               (nonce,))
        return got

    async def record_link_use(self, nonce: str, visit_id: str, now: datetime) -> None:
        await self._write("INSERT INTO link_uses (clinic_id, nonce, visit_id, used_at) VALUES (@c, ?, ?, ?)",
                          (nonce, visit_id, now))

    async def record_recovery_offer(self, offer: RecoveryOffer, now: datetime) -> bool:
        return await self._write(
            "INSERT INTO recovery_offers (clinic_id, visit_id, gesture, waited_past_min, offered_at) "
            "VALUES (@c, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (offer.visit_id, offer.gesture, offer.waited_past_min, now)) > 0

    async def recovery_offers(self, visit_ids: list[str]) -> dict[str, RecoveryOffer]:
        if not visit_ids:
            return {}
        rows = await self._rows("SELECT visit_id, gesture, waited_past_min FROM recovery_offers WHERE clinic_id = @c "
                                "AND visit_id = ANY(?::text[])", (list(visit_ids),))
        return {str(r[0]): RecoveryOffer(str(r[0]), str(r[1]), float(r[2])) for r in rows}

    # -- reports (server/store/reports.py: ReportOps) -------------------------------------------------

    async def report_visits(self, first: date, last: date, vet: str | None) -> list[ReportVisit]:
        where, args = "a.clinic_id = @c AND a.day BETWEEN ? AND ?", list[Any]([first, last])
        if vet is not None:
            where += " AND a.vet_id = ?"
            args.append(vet)
        rows = await self._rows(
            "SELECT a.id, a.kind, a.day, a.vet_id, v.name AS vet_name, a.type_id, t.name AS type_name, "
            "COALESCE(p.name, a.pet_name) AS pet, c.name AS client, a.scheduled, a.booked_min, a.status, "
            "a.arrived, a.started, a.ended FROM appointments a "
            "LEFT JOIN vets v ON v.clinic_id = a.clinic_id AND v.id = a.vet_id "
            "LEFT JOIN appointment_types t ON t.clinic_id = a.clinic_id AND t.id = a.type_id "
            "LEFT JOIN pets p ON p.clinic_id = a.clinic_id AND p.id = a.pet_id "
            "LEFT JOIN clients c ON c.clinic_id = p.clinic_id AND c.id = p.client_id "
            f"WHERE {where} ORDER BY a.day, a.vet_id COLLATE \"C\", COALESCE(a.scheduled, a.arrived) NULLS FIRST, "
            'a.id COLLATE "C"', args)
        return [ReportVisit(r[0], r[1], r[2], r[3], r[4] or r[3], r[5], r[6], r[7], r[8], _utc(r[9]), float(r[10]),
                            r[11], _utc(r[12]), _utc(r[13]), _utc(r[14])) for r in rows]

    async def report_told(self, first: date, last: date) -> list[ToldRange]:
        rows = await self._rows(
            "SELECT pr.visit_id, pr.at, pr.start, pr.p10, pr.p90, 'checkin' FROM promises pr "
            "JOIN appointments a ON a.clinic_id = pr.clinic_id AND a.id = pr.visit_id "
            "WHERE pr.clinic_id = @c AND a.day BETWEEN ? AND ? "
            "UNION ALL SELECT o.visit_id, o.created_at, o.told_start, o.told_p10, o.told_p90, 'text' FROM outbox o "
            "JOIN appointments a ON a.clinic_id = o.clinic_id AND a.id = o.visit_id WHERE o.clinic_id = @c "
            "AND a.day BETWEEN ? AND ? AND o.told_p90 IS NOT NULL AND o.status <> 'failed' "
            "UNION ALL SELECT ov.visit_id, o.created_at, ov.told_start, ov.told_p10, ov.told_p90, 'text' "
            "FROM outbox_visits ov JOIN outbox o ON o.id = ov.row_id "
            "JOIN appointments a ON a.clinic_id = ov.clinic_id AND a.id = ov.visit_id WHERE ov.clinic_id = @c "
            "AND a.day BETWEEN ? AND ? AND o.status <> 'failed' ORDER BY 2", [first, last] * 3)
        return [ToldRange(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def report_texts(self, since: datetime, until: datetime) -> list[ReportText]:
        rows = await self._rows("SELECT id, visit_id, kind, status, segments, created_at FROM outbox "
                                "WHERE clinic_id = @c AND created_at >= ? AND created_at < ? ORDER BY id",
                                (since, until))
        return [ReportText(int(r[0]), r[1], r[2], r[3], int(r[4]), r[5]) for r in rows]

    async def report_replies(self, since: datetime, until: datetime) -> list[ReportReply]:
        rows = await self._rows("SELECT kind, visit_id, received_at FROM inbound_messages WHERE clinic_id = @c "
                                "AND received_at >= ? AND received_at < ? ORDER BY id", (since, until))
        return [ReportReply(r[0], r[1], r[2]) for r in rows]

    async def report_opt_outs(self, since: datetime, until: datetime) -> int:
        return int(await self._val("SELECT COUNT(*) FROM opt_outs WHERE clinic_id = @c AND opted_out_at >= ? "
                                   "AND opted_out_at < ?", (since, until)))

    async def report_events(self, since: datetime, until: datetime, types: tuple[str, ...]) -> list[LoggedEvent]:
        if not types:
            return []
        rows = await self._rows(f"{_EVENT_SELECT} WHERE e.clinic_id = @c AND e.at >= ? AND e.at < ? "
                                "AND e.type = ANY(?::text[]) ORDER BY e.seq", (since, until, list(types)))
        return [_logged(r) for r in rows]

    async def report_notes(self, first: date, last: date) -> list[LoggedEvent]:
        rows = await self._rows(
            "SELECT e.seq, e.at, e.recorded_at, e.type, e.appointment_id, e.data, e.actor, a.vet_id FROM events e "
            "JOIN appointments a ON a.clinic_id = e.clinic_id AND a.id = e.appointment_id WHERE e.clinic_id = @c "
            "AND e.type = 'report_note' AND a.day BETWEEN ? AND ? ORDER BY e.seq", (first, last))
        return [_logged(r) for r in rows]

    async def report_recoveries(self, first: date, last: date) -> list[ReportRecovery]:
        rows = await self._rows(
            "SELECT ro.visit_id, ro.gesture, ro.offered_at FROM recovery_offers ro "
            "JOIN appointments a ON a.clinic_id = ro.clinic_id AND a.id = ro.visit_id "
            "WHERE ro.clinic_id = @c AND a.day BETWEEN ? AND ?", (first, last))
        return [ReportRecovery(r[0], r[1], r[2]) for r in rows]


    # -- practice-management connectors (server/store/pms.py: PmsOps) --------------------------------

    async def pms_state(self, pms: str) -> PmsSyncState:
        rows = await self._rows(f"SELECT {_PMS_STATE_COLS} FROM pms_sync WHERE clinic_id = @c AND pms = ?", (pms,))
        return _pms_state(rows[0]) if rows else PmsSyncState(pms)

    async def pms_states(self) -> list[PmsSyncState]:
        return [_pms_state(r) for r in await self._rows(
            f'SELECT {_PMS_STATE_COLS} FROM pms_sync WHERE clinic_id = @c ORDER BY pms COLLATE "C"')]

    async def save_pms_state(self, state: PmsSyncState) -> None:
        await self._write(
            "INSERT INTO pms_sync (clinic_id, pms, cursor, events_seen, last_attempt_at, last_ok_at, last_full_at, "
            "last_error, progress) VALUES (@c, ?, ?, ?, ?, ?, ?, ?, ?::jsonb) ON CONFLICT (clinic_id, pms) DO UPDATE "
            "SET cursor = excluded.cursor, events_seen = excluded.events_seen, "
            "last_attempt_at = excluded.last_attempt_at, last_ok_at = excluded.last_ok_at, "
            "last_full_at = excluded.last_full_at, last_error = excluded.last_error, progress = excluded.progress",
            (state.pms, state.cursor, state.events_seen, state.last_attempt_at, state.last_ok_at, state.last_full_at,
             state.last_error, json.dumps(state.progress)))

    async def pms_booked_visits(self, prefix: str, first: date, last: date) -> dict[str, str]:
        rows = await self._rows(
            "SELECT id, status FROM appointments WHERE clinic_id = @c AND kind = 'appointment' "
            "AND starts_with(id, ?) AND day >= ? AND day <= ?", (prefix, first, last))
        return {r["id"]: r["status"] for r in rows}

    async def client_preferences(self, client_ids: list[str]) -> dict[str, tuple[bool, str]]:
        rows = await self._rows("SELECT id, sms_consent, language FROM clients WHERE clinic_id = @c "
                                "AND id = ANY(?::text[])", (list(client_ids),))
        return {r["id"]: (bool(r["sms_consent"]), r["language"]) for r in rows}

    async def queue_pms_writes(self, rows: list[NewPmsWrite], now: datetime) -> int:
        n = 0
        for row in rows:
            n += await self._write(
                "INSERT INTO pms_outbox (clinic_id, pms, dedupe, visit_id, action, data, status, next_at, created_at) "
                "VALUES (@c, ?, ?, ?, ?, ?::jsonb, ?, ?, ?) ON CONFLICT (clinic_id, dedupe) DO NOTHING",
                (row.pms, row.dedupe, row.visit_id, row.action, json.dumps(row.data), row.status, now, now))
        return n

    async def due_pms_writes(self, pms: str, now: datetime, limit: int) -> list[PmsWrite]:
        rows = await self._rows(
            f"SELECT {_PMS_WRITE_COLS} FROM pms_outbox WHERE clinic_id = @c AND pms = ? AND status = 'queued' "
            "AND next_at <= ? ORDER BY id LIMIT ?" + (" FOR UPDATE SKIP LOCKED" if self._writable else ""),
            (pms, now, limit))
        return [_pms_write(r) for r in rows]

    async def finish_pms_write(self, row_id: int, status: str, now: datetime, *, error: str | None = None,
                               next_at: datetime | None = None) -> None:
        if status == "queued":
            await self._write("UPDATE pms_outbox SET status = 'queued', attempts = attempts + 1, next_at = ?, "
                              "last_error = COALESCE(?, last_error) WHERE clinic_id = @c AND id = ?",
                              (next_at or now, error, row_id))
            return
        attempted = 1 if status in ("sent", "failed") else 0
        await self._write(
            "UPDATE pms_outbox SET status = ?, attempts = attempts + ?, done_at = ?, "
            "last_error = COALESCE(?, last_error) WHERE clinic_id = @c AND id = ?",
            (status, attempted, now, error, row_id))

    async def pms_writes(self, statuses: tuple[str, ...], limit: int) -> list[PmsWrite]:
        rows = await self._rows(f"SELECT {_PMS_WRITE_COLS} FROM pms_outbox WHERE clinic_id = @c "
                                "AND status = ANY(?::text[]) ORDER BY id DESC LIMIT ?", (list(statuses), limit))
        return [_pms_write(r) for r in rows]

_VISIT_COLUMNS = (
    "a.id, a.kind, a.vet_id, a.type_id, a.booked_min, a.scheduled, a.arrived, a.started, a.ended, "
    "a.status, a.expected_min, a.priority, COALESCE(p.name, a.pet_name) AS pet"
)
_VISIT_FROM = "appointments a LEFT JOIN pets p ON p.clinic_id = a.clinic_id AND p.id = a.pet_id"
_VISIT_CLIENT = ("appointments a JOIN pets p ON p.clinic_id = a.clinic_id AND p.id = a.pet_id "
                 "JOIN clients c ON c.clinic_id = p.clinic_id AND c.id = p.client_id")
_EVENT_SELECT = ("SELECT e.seq, e.at, e.recorded_at, e.type, e.appointment_id, e.data, e.actor, a.vet_id FROM events e "
                 "LEFT JOIN appointments a ON a.clinic_id = e.clinic_id AND a.id = e.appointment_id")


def _visit(r: asyncpg.Record) -> Visit:
    return Visit(id=r["id"], kind=r["kind"], vet=r["vet_id"], type=r["type_id"], booked_min=r["booked_min"],
                 scheduled=_utc(r["scheduled"]), arrived=_utc(r["arrived"]), started=_utc(r["started"]),
                 ended=_utc(r["ended"]), noshow=r["status"] == "noshow", expected_min=r["expected_min"],
                 pet=r["pet"], priority=r["priority"])


def _logged(r: asyncpg.Record) -> LoggedEvent:
    return LoggedEvent(seq=int(r["seq"]), at=r["at"], recorded_at=r["recorded_at"], type=r["type"],
                       appointment=r["appointment_id"], data=json.loads(r["data"] or "{}"), actor=r["actor"],
                       vet=r["vet_id"])


_OUTBOX_COLS = ("id, dedupe_key, visit_id, kind, to_number, body, status, attempts, next_attempt_at, expires_at, "
                "uncertain, sending_at, provider_sid, provider_status, error_code, error_message, created_at")


def _outbox_row(r: asyncpg.Record) -> OutboxRow:
    return OutboxRow(
        id=int(r["id"]), dedupe_key=r["dedupe_key"], visit_id=r["visit_id"], kind=r["kind"],
        to_number=r["to_number"], body=r["body"], status=r["status"], attempts=int(r["attempts"]),
        next_attempt_at=r["next_attempt_at"], expires_at=r["expires_at"], uncertain=bool(r["uncertain"]),
        sending_at=r["sending_at"], provider_sid=r["provider_sid"], provider_status=r["provider_status"],
        error_code=r["error_code"], error_message=r["error_message"], created_at=r["created_at"],
    )


_PMS_STATE_COLS = "pms, cursor, events_seen, last_attempt_at, last_ok_at, last_full_at, last_error, progress"
_PMS_WRITE_COLS = "id, pms, visit_id, action, data, status, attempts, next_at, created_at, last_error"


def _pms_state(r: asyncpg.Record) -> PmsSyncState:
    return PmsSyncState(r["pms"], r["cursor"], int(r["events_seen"]), r["last_attempt_at"], r["last_ok_at"],
                        r["last_full_at"], r["last_error"], json.loads(r["progress"]))


def _pms_write(r: asyncpg.Record) -> PmsWrite:
    return PmsWrite(int(r["id"]), r["pms"], r["visit_id"], r["action"], json.loads(r["data"]), r["status"],
                    int(r["attempts"]), r["next_at"], r["created_at"], r["last_error"])


class PgStore:
    """One clinic's view of a PostgreSQL database: `await PgStore.open(url)`."""

    several_processes = True

    def __init__(self, pool: asyncpg.Pool, clinic_id: str, url: str, origin: str, *, owns_pool: bool = True) -> None:
        self._pool = pool
        # False for a view of a PgGroup: the group's pool and LISTEN connection are shared.
        self._owns_pool = owns_pool
        self.clinic_id = clinic_id
        self._url = url
        self._lock = asyncio.Lock()
        self.version = 0
        self._changed = asyncio.Event()
        self._writes = 0
        self._no_writes = asyncio.Event()
        self._no_writes.set()
        self.after_commit: list[Callable[[], None]] = []
        # Tells this process's own change notices from other processes', and whose texts are whose.
        self._origin = origin
        self._listener: asyncpg.Connection | None = None

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 10) -> PgStore:
        """Connect, migrate, make sure the clinic has its row, and listen for other processes' changes."""
        dsn, clinic_id = split_url(url)
        if clinic_id == GROUP:
            raise StoreUrlError("clinic=* (every clinic of the database) is for `waitroom serve` only: "
                             "name one clinic with ?clinic=ID")
        origin = uuid.uuid4().hex
        settings = {"application_name": APP_NAME_PREFIX + origin}
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size, server_settings=settings)
        store = cls(pool, clinic_id, dsn, origin)
        try:
            await store.migrate()
            async with pool.acquire() as conn:
                await conn.execute("INSERT INTO clinics (id, name, timezone) VALUES ($1, 'Clinic', 'UTC') "
                                   "ON CONFLICT (id) DO NOTHING", clinic_id)
            await store._listen()
        except BaseException:
            await store.close()
            raise
        return store

    async def _listen(self) -> None:
        self._listener = await asyncpg.connect(
            self._url, server_settings={"application_name": APP_NAME_PREFIX + self._origin})
        await self._listener.add_listener(NOTIFY_CHANNEL, self._on_notify)

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        clinic, _, origin = payload.rpartition(" ")
        if clinic == self.clinic_id and origin != self._origin:
            self._ended(changed=True)

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        if self._owns_pool:
            await self._pool.close()

    async def migrate(self) -> list[str]:
        """Apply the numbered migrations not yet recorded, once however many processes start at once."""
        applied: list[str] = []
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", _MIGRATE_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                               "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
            done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in _migrations():
                if version in done:
                    continue
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())",
                                   version, name)
                applied.append(name)
        return applied

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgTx]:
        """The one write path: serialised per clinic across every process, all or nothing."""
        self._writes += 1
        self._no_writes.clear()
        try:
            async with self._lock, self._pool.acquire() as conn:
                tr = conn.transaction()
                await tr.start()
                tx = PgTx(conn, self.clinic_id, writable=True, origin=self._origin)
                try:
                    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_CLASS, self.clinic_id)
                    yield tx
                    if tx.wrote:
                        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL,
                                           f"{self.clinic_id} {self._origin}")
                except BaseException:
                    with contextlib.suppress(Exception):
                        await tr.rollback()
                    self._ended(changed=None)
                    raise
                await tr.commit()
                self._ended(changed=tx.wrote)
        finally:
            self._writes -= 1
            if not self._writes:
                self._no_writes.set()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[PgTx]:
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield PgTx(conn, self.clinic_id, writable=False, origin=self._origin)

    def _ended(self, changed: bool | None) -> None:
        if changed is None:
            self.version += 1
            return
        if changed:
            self.version += 1
            self._changed.set()
            self._changed = asyncio.Event()
        for after in self.after_commit:
            after()

    async def writes_settled(self, timeout: float) -> None:
        if self._writes:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._no_writes.wait()

    async def wait_for_change(self, since: int, timeout: float) -> bool:
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
        """The budget in the database, on its clock: every process of the clinic charges the same."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", BUDGET_LOCK_CLASS,
                               f"{self.clinic_id} {key}")
            await conn.execute("DELETE FROM budget_spends WHERE clinic_id = $1 AND key = $2 "
                               "AND at <= clock_timestamp() - make_interval(secs => $3)",
                               self.clinic_id, key, window_s)
            used = await conn.fetchval("SELECT COUNT(*) FROM budget_spends WHERE clinic_id = $1 AND key = $2",
                                       self.clinic_id, key)
            if used >= limit:
                return False
            await conn.execute("INSERT INTO budget_spends (clinic_id, key, at) VALUES ($1, $2, clock_timestamp())",
                               self.clinic_id, key)
            return True


class PgGroup:
    """Every clinic of one database, for one server process (`waitroom serve --db ...?clinic=*`).

    One pool and one LISTEN connection for the whole group (200 clinics with a pool each would
    exhaust the server's connections); `store(clinic_id)` hands out each clinic's `PgStore` on
    that pool, with its own write lock, advisory lock and change notices, exactly as a store
    opened alone. Tokens are looked up group-wide here, to route an API request to its clinic."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, origin: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self._origin = origin
        self._stores: dict[str, PgStore] = {}
        self._listener: asyncpg.Connection | None = None
        # Called with a clinic id whose change notice names a clinic not served here yet.
        self.on_unknown_clinic: Callable[[str], None] | None = None

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 20) -> PgGroup:
        """Connect, migrate and listen; the URL's clinic= (`*` or absent) is ignored."""
        dsn, _ = split_url(url)
        origin = uuid.uuid4().hex
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size,
                                         server_settings={"application_name": APP_NAME_PREFIX + origin})
        group = cls(pool, dsn, origin)
        try:
            await PgStore(pool, GROUP, dsn, origin, owns_pool=False).migrate()
            group._listener = await asyncpg.connect(
                dsn, server_settings={"application_name": APP_NAME_PREFIX + origin})
            await group._listener.add_listener(NOTIFY_CHANNEL, group._on_notify)
        except BaseException:
            await group.close()
            raise
        return group

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        clinic, _, _ = payload.rpartition(" ")
        store = self._stores.get(clinic)
        if store is not None:
            store._on_notify(conn, pid, channel, payload)
        elif self.on_unknown_clinic is not None:
            self.on_unknown_clinic(clinic)

    def store(self, clinic_id: str) -> PgStore:
        """The clinic's store on the group's pool (one per clinic per process)."""
        store = self._stores.get(clinic_id)
        if store is None:
            store = self._stores[clinic_id] = PgStore(self._pool, clinic_id, self._dsn, self._origin, owns_pool=False)
        return store

    async def clinics(self) -> dict[str, dict[str, Any]]:
        """Every clinic of the database: id -> its settings."""
        rows = await self._pool.fetch("SELECT id, settings FROM clinics ORDER BY id")
        return {r["id"]: json.loads(r["settings"]) for r in rows}

    async def token_owners(self, token: str) -> list[tuple[str, str, str]]:
        """(clinic id, role, name) of every clinic holding this token (unrevoked): one, or the
        request is refused (the hash is unique in the schema, so two means a damaged table)."""
        rows = await self._pool.fetch("SELECT clinic_id, role, name FROM tokens WHERE hash = $1 AND NOT revoked "
                                      "LIMIT 2", hash_token(token))
        return [(r["clinic_id"], r["role"], r["name"]) for r in rows]

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        await self._pool.close()
