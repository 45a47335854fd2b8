"""A test's own look at what the clinic's database holds, on either backend.

The server reads and writes only through the store (server/store/); a test that checks what was
stored, or sets up a row no API makes, may run SQL of its own. `db` is the clinic's `--db` spec
(tests/conftest.py `new_db`): a SQLite path, or a `postgresql://` URL whose schema is the test's
own (`search_path`), so a query needs no `clinic_id` there. Write `?` placeholders; rows come back
as tuples. The two schemas name their tables and columns alike (tests/test_postgres.py holds them
to it) except the clinic's own row (`clinic` in SQLite, `clinics` in PostgreSQL): use the store's
`clinic()` / `set_clinic()` for that. Values come back as each backend keeps them (PostgreSQL's
booleans as True/False, which equal 1/0; its times as datetimes, SQLite's as text): compare
what a user would see, or convert.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg

from server.store import Store, open_store
from server.store.postgres import is_postgres_url, split_url
from server.timeutil import from_db, to_db

_QMARK = re.compile(r"\?")


def _dollars(sql: str) -> str:
    n = 0

    def one(_: re.Match[str]) -> str:
        nonlocal n
        n += 1
        return f"${n}"

    return _QMARK.sub(one, sql)


def _sqlite_path(db: str) -> str:
    return db.removeprefix("sqlite:")


def _sqlite_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Dates and times as the SQLite backend stores them (server.timeutil.to_db): tests pass
    them as Python values, which asyncpg takes as they are."""
    return tuple(to_db(a) if isinstance(a, datetime) else a.isoformat() if isinstance(a, date) else a for a in args)


async def rows(db: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows of one statement (a write returns []; it is committed at once)."""
    if is_postgres_url(db):
        url, _ = split_url(db)
        conn = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(_dollars(sql), *args)]
        finally:
            await conn.close()
    return await asyncio.to_thread(rows_now, db, sql, *args)


def rows_now(db: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """`rows`, from synchronous code (also inside a running event loop: it runs in a thread)."""
    if is_postgres_url(db):
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, rows(db, sql, *args)).result(timeout=60)
    with contextlib.closing(sqlite3.connect(_sqlite_path(db))) as conn, conn:
        return [tuple(r) for r in conn.execute(sql, _sqlite_args(args)).fetchall()]


async def dicts(db: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """`rows` as {column: value}."""
    if is_postgres_url(db):
        url, _ = split_url(db)
        conn = await asyncpg.connect(url)
        try:
            return [dict(r) for r in await conn.fetch(_dollars(sql), *args)]
        finally:
            await conn.close()

    def go() -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(_sqlite_path(db))) as conn, conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, _sqlite_args(args)).fetchall()]

    return await asyncio.to_thread(go)


async def value(db: str, sql: str, *args: Any) -> Any:
    """The first column of the first row."""
    got = await rows(db, sql, *args)
    return got[0][0] if got else None


@contextlib.asynccontextmanager
async def opened(db: str) -> AsyncIterator[Store]:
    """The clinic's store, opened and closed again (either backend)."""
    store = await open_store(db)
    try:
        yield store
    finally:
        await store.close()


async def set_settings(db: str, *, replace: bool = False, **settings: Any) -> None:
    """Change the clinic's settings (merged into what is there; `replace=True`: only these)."""
    from dataclasses import replace as with_

    async with opened(db) as store, store.transaction() as tx:
        clinic = await tx.clinic()
        new = dict(settings) if replace else {**clinic.settings, **settings}
        await tx.set_clinic(with_(clinic, settings=new))


def set_settings_now(db: str, **settings: Any) -> None:
    """`set_settings`, from synchronous code (also inside a running event loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, set_settings(db, **settings)).result(timeout=60)


def on_postgres(db: str) -> bool:
    return is_postgres_url(db)


async def everything(db: str) -> bytes:
    """All the database holds, to look for what must never be stored in it (a secret): the SQLite
    file's bytes; on PostgreSQL every row of every table of the test's schema, as text."""
    if not is_postgres_url(db):
        return await asyncio.to_thread(Path(_sqlite_path(db)).read_bytes)
    tables = [t for (t,) in await rows(db, "SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = current_schema()")]
    out = []
    for table in tables:
        out += [str(r[0]) for r in await rows(db, f'SELECT CAST(t AS TEXT) FROM "{table}" t')]
    return "\n".join(out).encode()


def when(value: Any) -> datetime | None:
    """A stored time as an aware datetime, whichever backend stored it (SQLite's text form)."""
    if value is None or isinstance(value, datetime):
        return value
    return from_db(value)
