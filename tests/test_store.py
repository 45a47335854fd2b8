"""The store: migrations recorded and safe twice, WAL and foreign keys, one writer path.

The SQLite backend's own tests (its migrations, WAL, its text time form) are sqlite_only; the
write path's (all or nothing, serialised, hooks after commit, reads that cannot write, hashed
tokens) run on the backend under test (conftest's clinic_db), as does tests/test_store_contract.py."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from server.store import SqliteStore, open_store
from server.store.sqlite import ReadOnly
from tests import dbq

SQLITE_ITSELF = pytest.mark.sqlite_only("the SQLite backend's own migrations, pragmas and stored time form")


@SQLITE_ITSELF
async def test_migrations_apply_once_and_are_recorded(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    store = await SqliteStore.open(db)
    rows = await store.conn.execute_fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
    assert rows[0][1] == "0001_initial.sql"
    assert await store.migrate() == []  # second run: nothing to do
    await store.close()
    again = await SqliteStore.open(db)  # and opening again neither fails nor re-applies
    assert len(await again.conn.execute_fetchall("SELECT * FROM schema_migrations")) == len(rows)
    await again.close()


@SQLITE_ITSELF
async def test_file_store_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "w.db"))
    assert (await store.conn.execute_fetchall("PRAGMA journal_mode"))[0][0] == "wal"
    assert (await store.conn.execute_fetchall("PRAGMA foreign_keys"))[0][0] == 1
    with pytest.raises(Exception, match="FOREIGN KEY"):
        async with store.transaction() as conn:
            await conn.execute("INSERT INTO appointments (id, kind, day, vet_id, booked_min) "
                               "VALUES ('a', 'appointment', '2026-03-02', 'no-such-vet', 15)")
    await store.close()


async def test_failed_transaction_leaves_nothing_behind(clinic_db: str) -> None:
    store = await open_store(clinic_db)
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.save_vet("v1", "Dr. A")
            raise RuntimeError("boom")
    assert await dbq.rows(clinic_db, "SELECT * FROM vets") == []
    await store.close()


async def test_concurrent_writers_do_not_mix_transactions(clinic_db: str) -> None:
    store = await open_store(clinic_db)

    async def writer(i: int, fail: bool) -> None:
        try:
            async with store.transaction() as tx:
                await tx.save_vet(f"v{i}", "x")
                await asyncio.sleep(0)
                if fail:
                    raise ValueError
        except ValueError:
            pass

    await asyncio.gather(*(writer(i, fail=i % 2 == 1) for i in range(20)))
    ids = {r[0] for r in await dbq.rows(clinic_db, "SELECT id FROM vets")}
    assert ids == {f"v{i}" for i in range(0, 20, 2)}
    await store.close()


async def test_transactions_commit_roll_back_and_tell_after_commit_hooks_once_each(clinic_db: str) -> None:
    # Every write goes through transaction(): serialised, all or nothing, caches told once per end.
    store = await open_store(clinic_db)
    seen: list[int] = []
    store.after_commit.append(lambda: seen.append(store.version))  # type: ignore[attr-defined]

    async def add(i: int, fail: bool) -> None:
        with contextlib.suppress(ValueError):
            async with store.transaction() as tx:
                await tx.save_vet(f"w{i}", "x")
                await asyncio.sleep(0)
                assert await tx.has_vet(f"w{i}")
                if fail:
                    raise ValueError("refused")

    before = store.version
    await asyncio.gather(*(add(i, fail=i % 2 == 1) for i in range(20)))
    ids = {r[0] for r in await dbq.rows(clinic_db, "SELECT id FROM vets")}
    assert ids == {f"w{i}" for i in range(0, 20, 2)}
    assert len(seen) == 10 and store.version == before + 20  # hooks once per commit; rollbacks bump too
    await store.close()


async def test_reads_cannot_write(clinic_db: str) -> None:
    store = await open_store(clinic_db)
    async with store.read() as q:
        with pytest.raises(ReadOnly):
            await q.keep_model({"x": 1}, datetime.now(UTC))
    assert await dbq.rows(clinic_db, "SELECT * FROM models") == []
    await store.close()


@SQLITE_ITSELF
async def test_old_time_forms_are_rewritten_to_the_one_canonical_form(tmp_path: Path) -> None:
    # A database written before migration 0005 holds "+00:00" times, with and without
    # microseconds; afterwards every stored time is the fixed-width Z form and sorts as text.
    db = tmp_path / "old.db"
    store = await SqliteStore.open(str(db))
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO vets (id, name) VALUES ('v1', 'Dr. A')")
        for i, t in enumerate(("2026-03-02T14:00:00+00:00", "2026-03-02T14:00:00.500000+00:00",
                               "2026-03-02T13:59:59.999999Z")):
            await tx.execute("INSERT INTO appointments (id, kind, day, vet_id, booked_min, scheduled) "
                             "VALUES (?, 'appointment', '2026-03-02', 'v1', 15, ?)", (f"a{i}", t))
        await tx.execute("DELETE FROM schema_migrations WHERE version >= 5")
    await store.close()
    store = await SqliteStore.open(str(db))
    rows = await store.conn.execute_fetchall("SELECT id, scheduled FROM appointments ORDER BY scheduled")
    assert [tuple(r) for r in rows] == [("a2", "2026-03-02T13:59:59.999999Z"),
                                        ("a0", "2026-03-02T14:00:00.000000Z"),
                                        ("a1", "2026-03-02T14:00:00.500000Z")]
    async with store.read() as q:
        day = await q.visits_for_day(date(2026, 3, 2))
    assert day.visits["a1"].scheduled == datetime(2026, 3, 2, 14, 0, 0, 500000, tzinfo=UTC)
    await store.close()


async def test_tokens_are_stored_hashed_and_checked(clinic_db: str) -> None:
    store = await open_store(clinic_db)
    async with store.transaction() as conn:
        token = await conn.create_token("kiosk", "lobby-1", datetime.now(UTC))
    stored = [r[0] for r in await dbq.rows(clinic_db, "SELECT hash FROM tokens")]
    assert token not in stored
    async with store.read() as q:
        assert await q.token_role(token) == ("kiosk", "lobby-1")
        assert await q.token_role(token + "x") is None
    with pytest.raises(ValueError):
        async with store.transaction() as conn:
            await conn.create_token("admin", "x", datetime.now(UTC))
    await store.close()


def test_the_stored_time_form_is_fixed_width_for_any_year() -> None:
    from datetime import timedelta, timezone

    from server.timeutil import from_db, to_db

    for t in (datetime(634, 8, 2, 3, 30, 22, tzinfo=timezone(timedelta(hours=13, minutes=50))),
              datetime(2026, 3, 2, 14, 0, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)):
        stored = to_db(t)
        assert stored is not None and len(stored) == 27 and stored.endswith("Z")
        assert from_db(stored) == t
