"""The store: the only place with SQL. The rest of the server sees `Store` and `Tx`.

    store = await open_store(path)          # the SQLite backend (server/store/sqlite.py)
    async with store.transaction() as tx:   # the one write path
        day = await tx.visits_for_day(today)
    async with store.read() as q:           # reads without the write lock
        clinic = await q.clinic()

See server/store/interface.py for the contract every backend keeps.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from server.domain import DayState
from server.store.interface import (
    ROLES,
    Clinic,
    LoggedEvent,
    LoginAttempt,
    Store,
    StoredVisit,
    TextContact,
    TextsPaused,
    Tx,
)
from server.store.sqlite import SqliteStore, SqliteTx, fetch, hash_token

__all__ = ["ROLES", "Clinic", "LoggedEvent", "LoginAttempt", "SqliteStore", "Store", "StoredVisit", "TextContact",
           "TextsPaused", "Tx", "fetch", "hash_token", "open_store"]


async def open_store(path: str) -> Store:
    """Open (and migrate) the clinic's database: `postgresql://...` (server/store/postgres.py, one
    clinic of a group's database: `?clinic=ID`), else a SQLite file (`sqlite:PATH`, a plain path,
    or ":memory:")."""
    from server.store.postgres import PgStore, is_postgres_url

    if is_postgres_url(path):
        return await PgStore.open(path)
    if path.startswith("sqlite:"):
        path = path.removeprefix("sqlite:")
    return await SqliteStore.open(path)


# -- transitional: module-level forms of a few named operations, kept for tests and benchmarks
# written before the store had them. Each takes a transaction or the store's connection.


def _tx(conn: Any) -> SqliteTx:
    return conn if isinstance(conn, SqliteTx) else SqliteTx(conn, writable=True)


async def set_clinic(conn: Any, clinic: Clinic) -> None:
    await _tx(conn).set_clinic(clinic)


async def load_day(conn: Any, day: date) -> DayState:
    return await _tx(conn).visits_for_day(day)


async def booked_lengths(conn: Any) -> dict[str, float]:
    return await _tx(conn).booked_lengths()


async def create_token(conn: Any, role: str, name: str) -> str:
    return await _tx(conn).create_token(role, name, datetime.now(UTC))


async def token_role(conn: Any, token: str) -> tuple[str, str] | None:
    return await _tx(conn).token_role(token)
