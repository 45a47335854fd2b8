"""The store: migrations recorded and safe twice, WAL and foreign keys, one writer path."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiosqlite
import pytest

from server.store import Store, create_token, fetch, token_role


async def test_migrations_apply_once_and_are_recorded(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    store = await Store.open(db)
    rows = await store.conn.execute_fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
    assert rows[0][1] == "0001_initial.sql"
    assert await store.migrate() == []  # second run: nothing to do
    await store.close()
    again = await Store.open(db)  # and opening again neither fails nor re-applies
    assert len(await again.conn.execute_fetchall("SELECT * FROM schema_migrations")) == len(rows)
    await again.close()


async def test_file_store_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "w.db"))
    assert (await store.conn.execute_fetchall("PRAGMA journal_mode"))[0][0] == "wal"
    assert (await store.conn.execute_fetchall("PRAGMA foreign_keys"))[0][0] == 1
    with pytest.raises(Exception, match="FOREIGN KEY"):
        async with store.transaction() as conn:
            await conn.execute("INSERT INTO appointments (id, kind, day, vet_id, booked_min) "
                               "VALUES ('a', 'appointment', '2026-03-02', 'no-such-vet', 15)")
    await store.close()


async def test_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "w.db"))
    with pytest.raises(RuntimeError):
        async with store.transaction() as conn:
            await conn.execute("INSERT INTO vets (id, name) VALUES ('v1', 'Dr. A')")
            raise RuntimeError("boom")
    assert await store.conn.execute_fetchall("SELECT * FROM vets") == []
    await store.close()


async def test_concurrent_writers_do_not_mix_transactions(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "w.db"))

    async def writer(i: int, fail: bool) -> None:
        try:
            async with store.transaction() as conn:
                await conn.execute("INSERT INTO vets (id, name) VALUES (?, ?)", (f"v{i}", "x"))
                await asyncio.sleep(0)
                if fail:
                    raise ValueError
        except ValueError:
            pass

    await asyncio.gather(*(writer(i, fail=i % 2 == 1) for i in range(20)))
    ids = {r[0] for r in await store.conn.execute_fetchall("SELECT id FROM vets")}
    assert ids == {f"v{i}" for i in range(0, 20, 2)}
    await store.close()


async def test_one_call_writes_commit_roll_back_and_mix_with_transactions(tmp_path: Path) -> None:
    # Store.write runs a write as one call on the database thread; it must keep every
    # promise transaction() makes: serialised with it, all or nothing, caches told.
    store = await Store.open(str(tmp_path / "w.db"))
    seen: list[int] = []
    store.after_commit.append(lambda: seen.append(store.version))

    async def add(conn: aiosqlite.Connection, vid: str, fail: bool = False) -> int:
        cur = await conn.execute("INSERT INTO vets (id, name) VALUES (?, ?)", (vid, "x"))
        rows = await fetch(conn, "SELECT COUNT(*) FROM vets WHERE id = ?", (vid,))
        if fail:
            raise ValueError("refused")
        assert cur.lastrowid is not None
        return int(rows[0][0])

    async def through_transaction(i: int) -> None:
        async with store.transaction() as conn:
            await conn.execute("INSERT INTO vets (id, name) VALUES (?, ?)", (f"t{i}", "x"))
            await asyncio.sleep(0)

    async def through_write(i: int) -> None:
        with contextlib.suppress(ValueError):
            await store.write(lambda conn: add(conn, f"w{i}", fail=i % 2 == 1))

    before = store.version
    await asyncio.gather(*(f(i) for i in range(10) for f in (through_transaction, through_write)))
    ids = {r[0] for r in await store.conn.execute_fetchall("SELECT id FROM vets")}
    assert ids == {f"t{i}" for i in range(10)} | {f"w{i}" for i in range(0, 10, 2)}
    assert len(seen) == 15 and store.version > before  # after-commit hooks ran once per commit
    assert await store.write(lambda conn: add(conn, "w-last")) == 1

    # A write that awaits anything but its connection cannot run as one call: it fails
    # loudly and leaves nothing behind.
    async def sleeps(conn: aiosqlite.Connection) -> None:
        await conn.execute("INSERT INTO vets (id, name) VALUES ('w-sleep', 'x')")
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something other"):
        await store.write(sleeps)
    assert await store.conn.execute_fetchall("SELECT id FROM vets WHERE id = 'w-sleep'") == []
    await store.close()


async def test_tokens_are_stored_hashed_and_checked(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "w.db"))
    async with store.transaction() as conn:
        token = await create_token(conn, "kiosk", "lobby-1")
    stored = [r[0] for r in await store.conn.execute_fetchall("SELECT hash FROM tokens")]
    assert token not in stored
    assert await token_role(store.conn, token) == ("kiosk", "lobby-1")
    assert await token_role(store.conn, token + "x") is None
    with pytest.raises(ValueError):
        async with store.transaction() as conn:
            await create_token(conn, "admin", "x")
    await store.close()
