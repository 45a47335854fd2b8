"""The store: the only place with SQL. The rest of the server sees `Store` and `Tx`.

    store = await open_store(path)          # the SQLite backend (server/store/sqlite.py)
    async with store.transaction() as tx:   # the one write path
        day = await tx.visits_for_day(today)
    async with store.read() as q:           # reads without the write lock
        clinic = await q.clinic()

See server/store/interface.py for the contract every backend keeps.
"""

from __future__ import annotations

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
from server.store.sqlite import SqliteStore, hash_token

__all__ = ["ROLES", "Clinic", "LoggedEvent", "LoginAttempt", "SqliteStore", "Store", "StoredVisit", "TextContact",
           "TextsPaused", "Tx", "hash_token", "open_store"]


async def open_store(path: str) -> Store:
    """Open (and migrate) the clinic's database: `postgresql://...` (server/store/postgres.py, one
    clinic of a group's database: `?clinic=ID`), else a SQLite file (`sqlite:PATH`, a plain path,
    or ":memory:")."""
    from server.store.interface import ONE_CLINIC, StoreUrlError
    from server.store.postgres import PgStore, is_postgres_url

    if is_postgres_url(path):
        return await PgStore.open(path)
    if "?clinic=" in path:
        raise StoreUrlError(ONE_CLINIC)
    if path.startswith("sqlite:"):
        path = path.removeprefix("sqlite:")
    return await SqliteStore.open(path)
