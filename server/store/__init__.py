"""The store: the only place with SQL. The rest of the server sees `Store` and `Tx`.

    store = await open_store(path)          # the SQLite backend (server/store/sqlite.py)
    async with store.transaction() as tx:   # the one write path
        day = await tx.visits_for_day(today)
    async with store.read() as q:           # reads without the write lock
        clinic = await q.clinic()

See server/store/interface.py for the contract every backend keeps.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from server.domain import DayState, Visit
from server.store.interface import ROLES, Clinic, LoggedEvent, LoginAttempt, Store, TextContact, TextsPaused, Tx
from server.store.sqlite import SqliteStore, SqliteTx, fetch, hash_token

__all__ = ["ROLES", "Clinic", "LoggedEvent", "LoginAttempt", "SqliteStore", "Store", "TextContact", "TextsPaused", "Tx",
           "fetch", "hash_token", "open_store"]


async def open_store(path: str) -> SqliteStore:
    """Open (and migrate) the clinic's database: a SQLite file, or ":memory:"."""
    return await SqliteStore.open(path)


# -- transitional: the module-level functions of the old server/store.py, for the modules not yet
# moved to named operations. Each takes a transaction or the store's connection.


def _tx(conn: Any) -> SqliteTx:
    return conn if isinstance(conn, SqliteTx) else SqliteTx(conn, writable=True)


async def set_clinic(conn: Any, clinic: Clinic) -> None:
    await _tx(conn).set_clinic(clinic)


async def load_day(conn: Any, day: date) -> DayState:
    return await _tx(conn).visits_for_day(day)


async def load_history(conn: Any, before: date) -> list[Visit]:
    return await _tx(conn).finished_visits_before(before)


async def booked_lengths(conn: Any) -> dict[str, float]:
    return await _tx(conn).booked_lengths()


async def insert_history(conn: Any, visits: Iterable[Visit], tz: tzinfo) -> int:
    return await _tx(conn).add_history(visits, tz)


async def create_token(conn: Any, role: str, name: str) -> str:
    return await _tx(conn).create_token(role, name, datetime.now(UTC))


async def token_role(conn: Any, token: str) -> tuple[str, str] | None:
    return await _tx(conn).token_role(token)


def to_db_now() -> str:
    from server.timeutil import to_db

    return str(to_db(datetime.now(UTC)))


