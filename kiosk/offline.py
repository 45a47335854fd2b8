"""The kiosk's outbox: every check-in, walk-in and urgent call is written here first.

Outbox pattern: `submit()` stores the request with its idempotency key (SQLite,
synchronous=FULL), then sends it at once only when nothing stands in its way: the kiosk
does not know itself offline, nothing taken earlier is still pending, and no delivery
attempt is under way. Otherwise the row simply stays and `deliver()` (the retry loop)
sends everything pending in the order it was taken, one deliverer at a time. The server
dedupes by idempotency_key, so a request that reached the server but whose answer was lost
is sent again harmlessly: nothing lost, nothing doubled.

Several kiosk processes may share one queue file: `waitroom kiosk --web` runs one per tablet
(kiosk/web.py). Deliveries are then serialised across processes too, by an exclusive `flock`
on `<queue>.lock` held while sending: whoever holds it reads what is still pending and marks
each request delivered before letting go, so every request is sent once, in the order taken,
by exactly one of them (the lock dies with its process, so a crash never leaves it held).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kiosk.api import JSON, ApiError, ClinicClient, Kind, ServerUnreachable

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    taken_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | rejected
    attempts INTEGER NOT NULL DEFAULT 0,
    response TEXT,
    last_error TEXT,
    taken_mono REAL,  -- time.monotonic() when taken (this boot's clock; see age_s)
    boot_id TEXT  -- which boot taken_mono belongs to
);
-- What the server last told this kiosk that it needs even when it starts offline (the clinic's name).
CREATE TABLE IF NOT EXISTS remembered (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
# Added after the first kiosks went out: a queue file from then gains them on open.
_NEW_COLUMNS = (("taken_mono", "REAL"), ("boot_id", "TEXT"))
# An old row's wall-clock age is believed only up to this (a clock that jumped says more).
_MAX_LEGACY_AGE_S = 12 * 3600


@functools.cache
def boot_id() -> str:
    """This boot of the machine: monotonic times of one boot cannot be compared with another's.
    Linux names each boot; elsewhere the kiosk process stands in for it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or _PROCESS_ID
    except OSError:
        return _PROCESS_ID


_PROCESS_ID = f"process-{uuid.uuid4().hex}"


def age_s(taken_mono: float | None, taken_boot: str | None, payload: JSON, *, now_mono: float | None = None,
          boot: str | None = None, wall_now: datetime | None = None) -> float | None:
    """How long ago a queued request was taken, by a clock that cannot be set wrong.

    The server turns this into a time (its own clock minus the age), so the kiosk's wall
    clock is never believed (a box whose clock booted at year 1 once stalled the server).
    Same boot: the monotonic difference. Taken before a reboot: at least the time since boot,
    which is all this box can vouch for. A row queued by an older kiosk (a wall-clock
    `taken_at` only): the difference of two readings of the same wall clock, if small and not
    negative; else None (the server then counts it from when it arrives).
    """
    now_mono = time.monotonic() if now_mono is None else now_mono
    if taken_mono is not None:
        if taken_boot == (boot or boot_id()):
            return round(max(0.0, now_mono - taken_mono), 1)
        return round(max(0.0, now_mono), 1)
    legacy = payload.get("taken_at")
    if isinstance(legacy, str):
        try:
            then = datetime.fromisoformat(legacy)
            if then.tzinfo is None:
                then = then.replace(tzinfo=UTC)
            age = ((wall_now or datetime.now(UTC)) - then).total_seconds()
        except (ValueError, OverflowError):
            return None
        if 0 <= age <= _MAX_LEGACY_AGE_S:
            return round(age, 1)
    return None


@dataclass(frozen=True)
class Item:
    id: int
    key: str
    kind: Kind
    payload: JSON
    state: str
    taken_mono: float | None = None
    boot_id: str | None = None

    def to_send(self) -> JSON:
        """The payload as sent now: a check-in carries its age (`age_s`), never a wall-clock time."""
        if self.kind != "checkin":
            return self.payload
        out = {k: v for k, v in self.payload.items() if k != "taken_at"}
        age = age_s(self.taken_mono, self.boot_id, self.payload)
        if age is not None:
            out["age_s"] = age
        return out


@dataclass(frozen=True)
class Submitted:
    """What became of a request handed to `OfflineQueue.submit`."""

    key: str
    answer: JSON | None  # the server's answer; None while the request waits in the queue
    tried: bool  # sent just now (False: left to the retry loop without touching the network)


def new_key() -> str:
    return f"kiosk-{uuid.uuid4().hex}"


class OfflineQueue:
    """A small SQLite outbox. Each call opens its own connection in a worker thread, so the
    Textual event loop never waits on an fsync."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()  # one deliverer at a time keeps the order and avoids doubles
        self.lock_path = self.path.with_name(self.path.name + ".lock")  # the same, across processes
        self._deliverers = 0  # holding or waiting for the lock
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5)
        conn.execute("PRAGMA synchronous=FULL")
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            have = {str(r[1]) for r in conn.execute("PRAGMA table_info(outbox)")}
            for name, kind in _NEW_COLUMNS:
                if name not in have:
                    conn.execute(f"ALTER TABLE outbox ADD COLUMN {name} {kind}")
            self._ready = True
        return conn

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        conn = self._connect()
        try:
            with conn:
                return list(conn.execute(sql, args).fetchall())
        finally:
            conn.close()

    async def _q(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        return await asyncio.to_thread(self._run, sql, args)

    async def enqueue(self, kind: Kind, payload: JSON) -> str:
        """Store a request; returns its idempotency key (added to the payload if missing)."""
        # taken_at (wall clock) is kept for people reading the file; what the server is told is
        # the age by the monotonic clock (`age_s`), worked out when the request is sent.
        taken_at = datetime.now(UTC).isoformat(timespec="seconds")
        payload = {**payload}
        payload.setdefault("idempotency_key", new_key())
        key = str(payload["idempotency_key"])
        await self._q(
            "INSERT OR IGNORE INTO outbox (key, kind, payload, taken_at, taken_mono, boot_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (key, kind, json.dumps(payload), taken_at, time.monotonic(), boot_id()),
        )
        return key

    async def items(self, state: str | None = None) -> list[Item]:
        where, args = ("WHERE state = ?", (state,)) if state else ("", ())
        rows = await self._q(
            f"SELECT id, key, kind, payload, state, taken_mono, boot_id FROM outbox {where} ORDER BY id", args)
        return [Item(int(str(r[0])), str(r[1]), r[2], json.loads(str(r[3])), str(r[4]),  # type: ignore[arg-type]
                     None if r[5] is None else float(str(r[5])), None if r[6] is None else str(r[6]))
                for r in rows]

    async def remember(self, name: str, value: str) -> None:
        await self._q("INSERT INTO remembered (name, value) VALUES (?, ?) "
                      "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))

    async def recall(self, name: str) -> str | None:
        rows = await self._q("SELECT value FROM remembered WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    async def pending_count(self) -> int:
        rows = await self._q("SELECT count(*) FROM outbox WHERE state = 'pending'")
        return int(str(rows[0][0]))

    async def outcome(self, key: str) -> tuple[str, JSON | None, str | None]:
        """(state, the server's answer if delivered, the last error) of one request."""
        rows = await self._q("SELECT state, response, last_error FROM outbox WHERE key = ?", (key,))
        state, resp, err = rows[0]
        return str(state), json.loads(str(resp)) if resp is not None else None, err  # type: ignore[return-value]

    @property
    def delivering(self) -> bool:
        """A delivery is under way (it may be waiting out a timeout on a black-holed network)."""
        return self._deliverers > 0

    @contextlib.asynccontextmanager
    async def _delivery(self) -> AsyncIterator[None]:
        self._deliverers += 1
        try:
            async with self._lock:
                yield
        finally:
            self._deliverers -= 1

    def _try_box_lock(self) -> int | None:
        """The cross-process delivery lock's file descriptor, or None while another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    @contextlib.asynccontextmanager
    async def _box_lock(self, wait: bool) -> AsyncIterator[bool]:
        """Hold the queue file's delivery lock; without `wait`, yields False at once if it is taken."""
        fd = self._try_box_lock()
        while fd is None and wait:
            await asyncio.sleep(0.05)  # another kiosk process is delivering (perhaps waiting out a timeout)
            fd = self._try_box_lock()
        try:
            yield fd is not None
        finally:
            if fd is not None:
                os.close(fd)  # releases the flock

    async def _send(self, api: ClinicClient, item: Item) -> str:
        """Send one pending request; returns its new state, or 'held' when it must wait."""
        try:
            answer = await api.submit(item.kind, item.to_send())
        except ServerUnreachable as e:
            await self._q("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", (str(e), item.id))
            return "held"
        except ApiError as e:
            await self._q("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", (str(e), item.id))
            if e.status in (401, 403, 429):
                return "held"  # our configuration or the server's limits: try again later, in order
            await self._q("UPDATE outbox SET state = 'rejected' WHERE id = ?", (item.id,))
            return "rejected"
        await self._q("UPDATE outbox SET state = 'delivered', attempts = attempts + 1, response = ? WHERE id = ?",
                      (json.dumps(answer), item.id))
        return "delivered"

    async def deliver(self, api: ClinicClient) -> int:
        """Send pending requests in the order taken, including any taken meanwhile; stop at
        the first that can't get through.

        Returns how many are still pending. A request the server refuses (4xx other than
        auth and rate limits) is set aside as 'rejected' so it does not block the rest;
        reception sees the kiosk's mark and the server has the unmatched event.
        """
        async with self._delivery(), self._box_lock(wait=True):
            while pending := await self.items("pending"):
                for item in pending:
                    if await self._send(api, item) == "held":
                        return await self.pending_count()
            return 0

    async def submit(self, api: ClinicClient, kind: Kind, payload: JSON, *, offline: bool = False) -> Submitted:
        """Store, then send now if nothing stands in the way; else leave it to `deliver()`.

        Not sent now when the kiosk knows it is `offline` (sending would only wait out the
        timeout), while a delivery is under way (never wait behind it) or when requests taken
        earlier are still pending (they go first). Raises ApiError when the server refuses it.
        """
        key = await self.enqueue(kind, payload)
        if offline or self.delivering:
            return Submitted(key, None, tried=False)
        async with self._delivery(), self._box_lock(wait=False) as ours:  # in-process lock: free, taken at once
            if not ours:  # another kiosk process on this queue is delivering: it or the retry sends this
                return Submitted(key, None, tried=False)
            pending = await self.items("pending")
            if [i.key for i in pending] != [key]:
                return Submitted(key, None, tried=False)
            state = await self._send(api, pending[0])
        _, answer, err = await self.outcome(key)
        if state == "rejected":
            raise ApiError(400, err or "refused by the server")
        return Submitted(key, answer, tried=True)
