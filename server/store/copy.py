"""`waitroom db copy --from clinic.db --to postgresql://...?clinic=ID` (issue 13 item 4): one
clinic's SQLite file into a group's PostgreSQL database, all in one transaction.

Every table is copied row for row, times from the canonical text to `timestamptz`, days to
`date`, 0/1 to booleans. Generated ids (event seqs, outbox, inbox, staff, tokens, ...) are
global in PostgreSQL, where other clinics have used them already, so each is given a new id
from the table's own sequence, in the same order, and every reference to one is rewritten:
`outbox_visits.row_id`, `inbound_media.inbound_id`, `staff_sessions.user_id`, the connectors'
`events_seen`, and inside the event log the `seq` of an undo or acknowledgement, the `inbound`
of an acknowledged text and the `outbox`/`outbox_id` of reception's text decisions and replies.

The copy refuses a clinic that already holds visits or events. Then it checks itself: every
table's row count on both sides; the event log replayed from an empty state on each side
(`server/logreplay.py`: every event through `apply_event`, the function the API uses) with the
same outcome (each visit's status, times, vet and priority, vets' away-until, paused texts,
undos, refusals, the texts and replies events name); the event log event by event (type, times,
visit, actor and data, with the rewritten ids); and each day's state as the estimator sees it
(`visits_for_day`, through both stores' interfaces). The first difference is named.

`check_copy` runs the same checks later, on a copy made earlier (`waitroom db check`): before a
clinic is switched over, or to see whether the file has moved on since.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

import asyncpg

from server.domain import DayState
from server.logreplay import first_difference, replay_log
from server.store.postgres import LOCK_CLASS, PgStore
from server.store.sqlite import SqliteStore
from server.timeutil import from_db

# Parents before children; (table, its generated id column or None).
TABLES: tuple[tuple[str, str | None], ...] = (
    ("vets", None), ("appointment_types", None), ("clients", None), ("pets", None), ("appointments", None),
    ("vet_status", None), ("vet_blocks", None), ("tokens", "id"), ("idempotency", None),
    ("models", "id"), ("outbox", "id"), ("outbox_visits", None), ("inbound_messages", "id"),
    # The log after the outbox and inbox: its data names their rows.
    ("inbound_media", None), ("events", "seq"), ("opt_outs", None), ("link_uses", None), ("recovery_offers", None),
    ("staff_users", "id"), ("staff_sessions", None), ("login_attempts", "id"), ("texts_paused", None),
    ("waiting_in_car", None), ("promises", None), ("pms_sync", None), ("pms_outbox", "id"),
)
# Columns that hold another table's generated id.
_REFS = {("outbox_visits", "row_id"): "outbox", ("inbound_media", "inbound_id"): "inbound_messages",
         ("staff_sessions", "user_id"): "staff_users", ("pms_sync", "events_seen"): "events"}
# Keys of an event's data that name a generated id.
_DATA_REFS = {"seq": "events", "inbound": "inbound_messages", "outbox": "outbox", "outbox_id": "outbox"}


class CopyError(RuntimeError):
    """The copy cannot be made, or did not check out (nothing was kept then)."""


@dataclass
class CopyReport:
    clinic: str
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # table: (SQLite rows, PostgreSQL rows)
    events_checked: int = 0
    events_replayed: int = 0
    refused_on_replay: int = 0  # events the rules refuse when replayed (the same on both sides)
    days_checked: int = 0

    @property
    def ok(self) -> bool:
        return all(a == b for a, b in self.counts.values())


def _convert(value: Any, pg_type: str) -> Any:
    if value is None:
        return None
    if pg_type == "timestamp with time zone":
        return from_db(str(value))
    if pg_type == "date":
        return date.fromisoformat(str(value))
    if pg_type == "boolean":
        return bool(value)
    if pg_type in ("integer", "bigint"):
        return int(value)
    if pg_type == "double precision":
        return float(value)
    if pg_type == "jsonb":
        return value if isinstance(value, str) else json.dumps(value)
    return value


def _remap_data(data: str, maps: dict[str, dict[int, int]]) -> str:
    d = json.loads(data or "{}")
    if isinstance(d, dict):
        for key, table in _DATA_REFS.items():
            v = d.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and v in maps.get(table, {}):
                d[key] = maps[table][v]
    return json.dumps(d)


async def copy_sqlite_to_postgres(src_path: str, dst_url: str) -> CopyReport:
    """Copy the clinic in `src_path` into the clinic of `dst_url`, then check it (CopyError when it
    cannot be made or does not check out: the transaction is rolled back, nothing is kept)."""
    src = await SqliteStore.open(src_path)
    dst = await PgStore.open(dst_url)
    try:
        report = CopyReport(dst.clinic_id)
        unknown = set(await sqlite_tables(src)) - {t for t, _ in TABLES}
        if unknown:
            raise CopyError(f"this file has tables the copy does not know: {', '.join(sorted(unknown))} "
                            "(a newer waitroom made it?)")
        clinic = await src.clinic()
        async with dst._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_CLASS, dst.clinic_id)
            busy = await conn.fetchval("SELECT (SELECT COUNT(*) FROM appointments WHERE clinic_id = $1) + "
                                       "(SELECT COUNT(*) FROM events WHERE clinic_id = $1)", dst.clinic_id)
            if busy:
                raise CopyError(f"clinic {dst.clinic_id!r} already holds visits or events in that database: "
                                "copy into a new clinic (?clinic=ID)")
            await conn.execute(
                "UPDATE clinics SET name = $2, timezone = $3, region = $4, phone = $5, settings = $6::jsonb, "
                "configured = true WHERE id = $1", dst.clinic_id, clinic.name, clinic.timezone, clinic.region,
                clinic.phone, clinic.settings_json())
            maps: dict[str, dict[int, int]] = {}
            for table, id_col in TABLES:
                try:
                    n = await _copy_table(src, conn, dst.clinic_id, table, id_col, maps)
                except asyncpg.UniqueViolationError as e:
                    # Tokens and staff sessions are unique across the database: each names its clinic.
                    raise CopyError(f"{table}: a row of this file is in the database already ({e.detail or e}); "
                                    "a token or session belongs to one clinic only") from e
                got = await conn.fetchval(f"SELECT COUNT(*) FROM {table} WHERE clinic_id = $1", dst.clinic_id)
                report.counts[table] = (n, int(got))
            await _check(src, conn, dst, maps, report)
        return report
    finally:
        await src.close()
        await dst.close()


async def _copy_table(src: SqliteStore, conn: asyncpg.Connection, clinic_id: str, table: str, id_col: str | None,
                      maps: dict[str, dict[int, int]]) -> int:
    types = {r["column_name"]: r["data_type"] for r in await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 "
        "AND table_schema = current_schema()", table)}
    rows = list(await src.conn.execute_fetchall(f"SELECT * FROM {table}" + (f" ORDER BY {id_col}" if id_col else "")))
    if not rows:
        if id_col:
            maps[table] = {}
        return 0
    cols = [c for c in rows[0].keys() if c in types and c != "clinic_id"]
    if id_col:
        fresh = [int(r[0]) for r in await conn.fetch(
            "SELECT nextval(pg_get_serial_sequence($1, $2)) FROM generate_series(1, $3)", table, id_col, len(rows))]
        maps[table] = {int(r[id_col]): new for r, new in zip(rows, sorted(fresh), strict=True)}
    out = []
    for r in rows:
        values = []
        for c in cols:
            v = r[c]
            if c == id_col:
                v = maps[table][int(v)]
            elif (table, c) in _REFS and v is not None:
                ref = maps.get(_REFS[(table, c)], {})
                v = ref.get(int(v), v) if table != "pms_sync" else _seen(int(v), ref)
            elif table == "events" and c == "data":
                v = _remap_data(v, maps)
            values.append(_convert(v, types[c]))
        out.append((clinic_id, *values))
    marks = ", ".join(f"${i}" for i in range(1, len(cols) + 2))
    overriding = " OVERRIDING SYSTEM VALUE" if id_col else ""
    await conn.executemany(f"INSERT INTO {table} (clinic_id, {', '.join(cols)}){overriding} VALUES ({marks})", out)
    return len(rows)


async def sqlite_tables(src: SqliteStore) -> list[str]:
    """The clinic's tables in a SQLite file (not the clinic row, the migrations or SQLite's own)."""
    rows = await src.conn.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    return [str(r[0]) for r in rows if r[0] not in ("clinic", "schema_migrations", "sqlite_sequence")]


def _seen(old: int, seqs: dict[int, int]) -> int:
    """A connector's "events seen up to seq N", in the new numbering: the newest event at or before N."""
    return max((new for o, new in seqs.items() if o <= old), default=0)


async def _check(src: SqliteStore, conn: asyncpg.Connection, dst: PgStore, maps: dict[str, dict[int, int]],
                 report: CopyReport) -> None:
    """The row counts (in `report`), then the event log event by event, and each day's state
    through both stores' interfaces."""
    from server.store.postgres import PgTx

    if not report.ok:
        bad = ", ".join(f"{t} {a} -> {b}" for t, (a, b) in report.counts.items() if a != b)
        raise CopyError(f"row counts differ: {bad}")

    async with src.read() as q:
        old_log = await q.events_since(0)
        days = [date.fromisoformat(str(r[0])) for r in await src.conn.execute_fetchall(
            "SELECT DISTINCT day FROM appointments ORDER BY day")]
        old_days = [await q.visits_for_day(d) for d in days]
    new = PgTx(conn, dst.clinic_id, writable=False)
    async with src.read() as q:
        replayed = await replay_log(q)
    diff = first_difference(replayed, await replay_log(new), ("file", "copy"), (await src.clinic()).tz)
    if diff:
        raise CopyError(f"replaying the event log on both sides: {diff}")
    report.events_replayed = len(replayed.log)
    report.refused_on_replay = len(replayed.refused)
    new_log = await new.events_since(0)
    if len(new_log) != len(old_log):
        raise CopyError(f"event log: {len(old_log)} events, {len(new_log)} copied")
    seqs = maps.get("events", {})
    for a, b in zip(old_log, new_log, strict=True):
        want = json.loads(_remap_data(json.dumps(a.data), maps))
        if (seqs[a.seq], a.type, a.at, a.recorded_at, a.appointment, a.actor, a.vet, want) != (
                b.seq, b.type, b.at, b.recorded_at, b.appointment, b.actor, b.vet, b.data):
            raise CopyError(f"event {a.seq} ({a.type}) differs once copied")
    report.events_checked = len(new_log)
    for d, before in zip(days, old_days, strict=True):
        after = await new.visits_for_day(d)
        if (before.vets, before.visits, before.vet_unavailable_until, before.blocks) != (
                after.vets, after.visits, after.vet_unavailable_until, after.blocks):
            raise CopyError(f"the day {d} reads differently once copied: {_day_difference(before, after)}")
    report.days_checked = len(days)


def _day_difference(a: DayState, b: DayState) -> str:
    """The first visit (and field) or vet that differs between two states of a day."""
    for vid in sorted(set(a.visits) | set(b.visits)):
        x, y = a.visits.get(vid), b.visits.get(vid)
        if x is None or y is None:
            return f"visit {vid!r} is {'missing' if y is None else 'new'} in the copy"
        for f in fields(x):
            p, q = getattr(x, f.name), getattr(y, f.name)
            if p != q:
                return f"visit {vid!r}: {f.name} {p!r} in the file, {q!r} in the copy"
    if a.vets != b.vets:
        return f"vets {a.vets} in the file, {b.vets} in the copy"
    if a.vet_unavailable_until != b.vet_unavailable_until:
        return f"vets away until {a.vet_unavailable_until} in the file, {b.vet_unavailable_until} in the copy"
    return f"blocked time {a.blocks} in the file, {b.blocks} in the copy"


async def check_copy(src_path: str, dst_url: str) -> CopyReport:
    """Check a copy made earlier against its SQLite file, with the copy's own checks (row counts,
    the log replayed on both sides, the log event by event, every day): CopyError names the
    first difference. Generated ids were given in the file's order, so they are paired by it."""
    src = await SqliteStore.open(src_path)
    dst = await PgStore.open(dst_url)
    try:
        report = CopyReport(dst.clinic_id)
        async with dst._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            maps: dict[str, dict[int, int]] = {}
            for table, id_col in TABLES:
                (n,), = await src.conn.execute_fetchall(f"SELECT COUNT(*) FROM {table}")
                got = await conn.fetchval(f"SELECT COUNT(*) FROM {table} WHERE clinic_id = $1", dst.clinic_id)
                report.counts[table] = (int(n), int(got))
                if id_col:
                    old = [int(r[0]) for r in await src.conn.execute_fetchall(
                        f"SELECT {id_col} FROM {table} ORDER BY {id_col}")]
                    new = [int(r[0]) for r in await conn.fetch(
                        f"SELECT {id_col} FROM {table} WHERE clinic_id = $1 ORDER BY {id_col}", dst.clinic_id)]
                    maps[table] = dict(zip(old, new, strict=False))
            await _check(src, conn, dst, maps, report)
        return report
    finally:
        await src.close()
        await dst.close()
