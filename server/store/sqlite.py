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
import contextlib
import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, date, datetime, tzinfo
from importlib import resources
from typing import Any

import aiosqlite

from server.domain import DayState, Visit
from server.store.interface import ROLES, Clinic
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


class SqliteTx:
    """One transaction (or a read) on the store's connection: the named operations."""

    def __init__(self, conn: aiosqlite.Connection, *, writable: bool) -> None:
        self._db = conn
        self._writable = writable

    # -- the raw connection, for the modules not yet moved behind named operations -------------
    # (transitional: the architecture test forbids their use outside server/store/ once every
    # module is moved)

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

    # -- schedule -------------------------------------------------------------------------------

    async def save_vet(self, vet_id: str, name: str) -> None:
        await self._write("INSERT INTO vets (id, name) VALUES (?, ?) "
                          "ON CONFLICT (id) DO UPDATE SET name = excluded.name", (vet_id, name))

    async def save_appointment_type(self, type_id: str, name: str, booked_min: float) -> None:
        await self._write(
            "INSERT INTO appointment_types (id, name, booked_min) VALUES (?, ?, ?) ON CONFLICT (id) "
            "DO UPDATE SET name = excluded.name, booked_min = excluded.booked_min", (type_id, name, booked_min))

    # -- visits ---------------------------------------------------------------------------------

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
        return DayState(vets=vets, visits=visits, vet_unavailable_until=away)

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
    return Visit(
        id=r["id"],
        kind=r["kind"],
        vet=r["vet_id"],
        type=r["type_id"],
        booked_min=r["booked_min"],
        scheduled=from_db(r["scheduled"]),
        arrived=from_db(r["arrived"]),
        started=from_db(r["started"]),
        ended=from_db(r["ended"]),
        noshow=r["status"] == "noshow",
        expected_min=r["expected_min"],
        pet=r["pet"],
        priority=r["priority"],
    )


# Typed loosely while modules not yet moved still pass a transaction where they once passed a
# connection (transitional: becomes SqliteTx when the last one moves).
_Transitional = Any


class SqliteStore:
    """The database: open with `await SqliteStore.open(path)` (":memory:" for replay and tests)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        # The backend's own connection. Tests of this backend may read it; nothing outside
        # server/store/ may.
        self.conn = conn
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
        # Run inside every write transaction just before COMMIT. Transitional: the runtime's
        # text decisions move to an explicit call in the write path.
        self.before_commit: list[Callable[[Any], Any]] = []
        # Run just after each COMMIT or ROLLBACK (wake the notifier, keep derived caches).
        self.after_commit: list[Callable[[], None]] = []

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

    async def close(self) -> None:
        await self.conn.close()

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
    async def transaction(self) -> AsyncIterator[_Transitional]:
        """The one write path: serialised, immediate, committed before the caller answers."""
        self._writes += 1
        self._no_writes.clear()
        try:
            async with self._lock:
                await self.conn.execute("BEGIN IMMEDIATE")
                changes = self.conn.total_changes
                tx = SqliteTx(self.conn, writable=True)
                try:
                    yield tx
                    for hook in self.before_commit:
                        await hook(tx)
                except BaseException:
                    await self.conn.execute("ROLLBACK")
                    self._ended(changed=None)
                    raise
                await self.conn.execute("COMMIT")
                self._ended(changed=self.conn.total_changes != changes)
        finally:
            self._writes -= 1
            if not self._writes:
                self._no_writes.set()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[SqliteTx]:
        yield SqliteTx(self.conn, writable=False)

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
