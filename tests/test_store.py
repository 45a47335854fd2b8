"""The store: migrations recorded and safe twice, WAL and foreign keys, one writer path."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.store import Store, create_token, token_role


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
