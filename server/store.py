"""The clinic's SQLite store: one file, one writer path, numbered migrations.

Every write goes through `Store.transaction()`: an asyncio.Lock around `BEGIN IMMEDIATE`
... `COMMIT`. Two tasks sharing one aiosqlite connection would otherwise commit each
other's half-done work. Reads that must see a consistent day also take the lock (they are
short); everything else reads freely.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from importlib import resources
from typing import Any, TypeVar, cast

import aiosqlite

from server.domain import DayState, Visit
from server.timeutil import from_db, to_db, tz_from

ROLES = ("pms", "kiosk", "reception", "display")
T = TypeVar("T")


@dataclass(slots=True)
class Clinic:
    name: str
    timezone: str
    region: str = "US"
    phone: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def tz(self) -> tzinfo:
        return tz_from(self.timezone)


async def fetch(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
    """All rows of a query, as a list (aiosqlite types its answer as a bare iterable)."""
    return list(await conn.execute_fetchall(sql, params))


class _Answered:
    """The aiosqlite calls our write code makes, answered at once on the database thread
    (see `Store.write`): `await conn.execute(...)` and friends never suspend."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._raw.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return self._raw.executemany(sql, rows)

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._raw.execute(sql, params).fetchall()

    @property
    def total_changes(self) -> int:
        return self._raw.total_changes


def _finish_now(coro: Awaitable[T]) -> T:
    """Run a coroutine that never suspends to its end, here and now."""
    assert isinstance(coro, Coroutine)
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise RuntimeError("a Store.write awaited something other than its database connection")


def _migrations() -> list[tuple[int, str, str]]:
    out = []
    for entry in resources.files("server.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), name, entry.read_text()))
    return sorted(out)


class Store:
    """The database: open with `await Store.open(path)` (":memory:" for replay and tests)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
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
        # Run inside every write transaction, just before COMMIT (the runtime decides texts
        # there, so a text is queued in the same transaction as the event that caused it)...
        self.before_commit: list[Callable[[aiosqlite.Connection], Awaitable[None]]] = []
        # ...and just after it (wake the notifier, keep derived caches).
        self.after_commit: list[Callable[[], None]] = []

    @classmethod
    async def open(cls, path: str) -> Store:
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
        async with self.transaction() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            rows = await fetch(conn, "SELECT version FROM schema_migrations")
            done = {r[0] for r in rows}
            for version, name, sql in _migrations():
                if version in done:
                    continue
                # executescript would COMMIT our transaction: run the statements one by one.
                for stmt in _split_sql(sql):
                    await conn.execute(stmt)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, datetime.now(UTC).isoformat()),
                )
                applied.append(name)
        return applied

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """The one write path: serialised, immediate, committed before the caller answers."""
        self._writes += 1
        self._no_writes.clear()
        try:
            async with self._lock:
                await self.conn.execute("BEGIN IMMEDIATE")
                changes = self.conn.total_changes
                try:
                    yield self.conn
                    for hook in self.before_commit:
                        await hook(self.conn)
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

    async def write(self, work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """`work(conn)` and the before-commit hooks as ONE call on the database's thread.

        For the busiest write (an event from the API): `transaction()` makes a dozen awaited
        round trips to the database thread, and on a loop busy with a lobby of readers each
        waits a turn. Here `work` and the hooks see a connection whose calls are answered at
        once, in that thread, so the coroutines finish without ever suspending; one that
        awaits anything else fails loudly (RuntimeError) and its transaction is rolled back.
        Same lock, same BEGIN IMMEDIATE ... COMMIT, same hooks as `transaction()`.
        """
        loop = asyncio.get_running_loop()

        def in_db_thread() -> T:
            raw = self.conn._conn  # aiosqlite's sqlite3 connection, owned by this very thread
            conn = cast(aiosqlite.Connection, _Answered(raw))
            raw.execute("BEGIN IMMEDIATE")
            changes = raw.total_changes
            try:
                result = _finish_now(work(conn))
                for hook in self.before_commit:
                    _finish_now(hook(conn))
            except BaseException:
                raw.execute("ROLLBACK")
                loop.call_soon_threadsafe(self._ended, None)
                raise
            raw.execute("COMMIT")
            # Scheduled before aiosqlite hands back the result: caches and live pages are up to
            # date when the caller answers, and even if the caller was cancelled meanwhile.
            loop.call_soon_threadsafe(self._ended, raw.total_changes != changes)
            return result

        async with self._lock:
            return cast(T, await self.conn._execute(in_db_thread))  # type: ignore[no-untyped-call]

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
        acknowledged) makes its dozen round trips to the database thread on a quiet event loop,
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

    # -- clinic ---------------------------------------------------------------------------

    async def clinic(self) -> Clinic:
        rows = await fetch(self.conn,
            "SELECT name, timezone, region, phone, settings FROM clinic WHERE id = 1"
        )
        if not rows:
            return Clinic(name="Clinic", timezone="UTC")
        r = rows[0]
        return Clinic(r["name"], r["timezone"], r["region"], r["phone"], json.loads(r["settings"]))


async def set_clinic(conn: aiosqlite.Connection, clinic: Clinic) -> None:
    tz_from(clinic.timezone)  # reject an unknown zone before it is stored
    await conn.execute(
        "INSERT INTO clinic (id, name, timezone, region, phone, settings) VALUES (1, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET name = excluded.name, timezone = excluded.timezone, "
        "region = excluded.region, phone = excluded.phone, settings = excluded.settings",
        (clinic.name, clinic.timezone, clinic.region, clinic.phone, json.dumps(clinic.settings)),
    )


def _split_sql(sql: str) -> list[str]:
    """Statements of a migration file (ours hold no semicolons inside strings or triggers)."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


# -- reading visits -------------------------------------------------------------------------

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


async def load_day(conn: aiosqlite.Connection, day: date) -> DayState:
    """Today's state as the estimator sees it."""
    vets, away = [], {}
    for r in await fetch(conn, "SELECT v.id, s.unavailable_until FROM vets v "
                               "LEFT JOIN vet_status s ON s.vet_id = v.id ORDER BY v.id"):
        vets.append(r[0])
        t = from_db(r[1])
        if t is not None:
            away[r[0]] = t
    rows = await fetch(conn,
        f"SELECT {_VISIT_COLUMNS} FROM appointments a LEFT JOIN pets p ON p.id = a.pet_id "
        "WHERE a.day = ? AND a.status != 'cancelled' ORDER BY a.scheduled, a.arrived, a.id",
        (day.isoformat(),),
    )
    visits = {r["id"]: _visit(r) for r in rows}
    return DayState(vets=vets, visits=visits, vet_unavailable_until=away)


async def load_history(conn: aiosqlite.Connection, before: date) -> list[Visit]:
    """Finished visits of earlier days: what the estimator learns the clinic from."""
    rows = await fetch(conn,
        f"SELECT {_VISIT_COLUMNS} FROM appointments a LEFT JOIN pets p ON p.id = a.pet_id "
        "WHERE a.day < ? AND a.status IN ('done', 'noshow') ORDER BY a.day, a.scheduled, a.arrived",
        (before.isoformat(),),
    )
    return [_visit(r) for r in rows]


async def booked_lengths(conn: aiosqlite.Connection) -> dict[str, float]:
    rows = await fetch(conn, "SELECT id, booked_min FROM appointment_types")
    return {r[0]: float(r[1]) for r in rows}


async def insert_history(conn: aiosqlite.Connection, visits: Iterable[Visit], tz: tzinfo) -> int:
    """Bulk-load finished visits of earlier days (replay's history, a PMS back-fill)."""
    known = {r[0] for r in await fetch(conn, "SELECT id FROM appointment_types")}
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
    await conn.executemany("INSERT INTO appointment_types (id, name, booked_min) VALUES (?, ?, ?)",
                           [(t, t, b) for t, b in new_types.items()])
    await conn.executemany(
        "INSERT OR IGNORE INTO appointments (id, kind, day, vet_id, type_id, pet_name, scheduled, "
        "booked_min, expected_min, status, arrived, started, ended) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows)
    return len(rows)


# -- tokens -------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    # Tokens are 256-bit random strings, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(conn: aiosqlite.Connection, role: str, name: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = f"wr_{role}_{secrets.token_urlsafe(32)}"
    await conn.execute(
        "INSERT INTO tokens (name, role, hash, created_at) VALUES (?, ?, ?, ?)",
        (name, role, hash_token(token), datetime.now(UTC).isoformat()),
    )
    return token


async def token_role(conn: aiosqlite.Connection, token: str) -> tuple[str, str] | None:
    """(role, name) for a valid token, None otherwise."""
    rows = await fetch(conn,
        "SELECT role, name FROM tokens WHERE hash = ? AND revoked = 0", (hash_token(token),)
    )
    return (rows[0][0], rows[0][1]) if rows else None


def to_db_now() -> str:
    return datetime.now(UTC).isoformat()
