"""Shared fixtures: a seeded clinic day in a real SQLite file, served by the real app.

- `clock`: a ManualClock at 07:50 on the test day (America/Chicago); move it by hand.
- `api`: an aiohttp TestClient on `create_app` with tokens for every role (`api.h("kiosk")`).
- `live_server`: the real app on a loopback port (for the kiosk and browser tests), which can
  be stopped and started again on the same port to simulate an outage.
- `pg_url`: a PostgreSQL URL whose tables live in a schema of this test's own, on the session's
  throwaway cluster (tests/pg_cluster.py) or on WAITROOM_TEST_DATABASE.
- `new_db` / `clinic_db`: where a test keeps its clinic. A fresh SQLite file in `tmp_path`; under
  `WAITROOM_TEST_DATABASE=postgresql://...` (`make test-pg`) a fresh clinic on that server instead
  (a schema of the test's own, by `search_path`), so the whole suite runs on PostgreSQL. Anything
  that takes `--db` or `Config.db_path` takes either. Tests about SQLite itself are marked
  `@pytest.mark.sqlite_only("why")` and skipped there with the reason.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config import Config, ManualClock
from server.demo import seed_day
from server.store import open_store
from tests import pg_cluster

TZ = ZoneInfo("America/Chicago")
DAY = date(2026, 3, 2)
START = datetime(2026, 3, 2, 7, 50, tzinfo=TZ)
ROLES = ("pms", "kiosk", "reception", "display")


@pytest.fixture(autouse=True)
def _no_developer_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own environment out of tests."""
    for name in ("WAITROOM_DB", "WAITROOM_SECRET", "WAITROOM_PUBLIC_URL", "WAITROOM_SERVER", "WAITROOM_TOKEN"):
        monkeypatch.delenv(name, raising=False)


# `make test-pg`: the whole suite on this PostgreSQL server (see new_db).
TEST_DATABASE = os.environ.get("WAITROOM_TEST_DATABASE", "")
ON_PG = bool(TEST_DATABASE)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under WAITROOM_TEST_DATABASE, a test about SQLite itself is skipped, saying why."""
    if not ON_PG:
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            why = marker.args[0] if marker.args else "a test of SQLite itself"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {why}"))


NewDb = Callable[..., str]


@pytest.fixture
def new_db(tmp_path: Path) -> Iterator[NewDb]:
    """`new_db("name")`: a fresh, empty clinic database's `--db` spec. A SQLite file in tmp_path,
    or under WAITROOM_TEST_DATABASE a schema of its own on that server (dropped after the test)."""
    schemas: list[str] = []

    def make(name: str = "clinic") -> str:
        if not ON_PG:
            return str(tmp_path / f"{name}.db")
        schema = pg_cluster.new_schema_name()
        _pg_run(TEST_DATABASE, f"CREATE SCHEMA {schema}")
        schemas.append(schema)
        return pg_cluster.with_params(TEST_DATABASE, search_path=schema)

    yield make
    for schema in schemas:
        _pg_run(TEST_DATABASE, f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def clinic_db(new_db: NewDb) -> str:
    """This test's clinic database (empty): a SQLite file, or a PostgreSQL schema (see new_db)."""
    return new_db("clinic")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


async def seed_clinic(db: str | Path, *, history_days: int = 10) -> dict[str, str]:
    """A demo clinic day in `db` (a path or any `--db` spec); returns a token per role."""
    store = await open_store(str(db))
    try:
        async with store.transaction() as conn:
            return await seed_day(conn, DAY, "America/Chicago", history_days=history_days, token_prefix="test")
    finally:
        await store.close()


def link_secret(db: str, secret: str = "test-secret") -> str:
    """The key the app signs this clinic's status and reschedule links with: `secret` itself on
    SQLite; on PostgreSQL one derived from it and the clinic's id (server/app.py)."""
    from server.app import _per_clinic_secret

    return _per_clinic_secret(Config(db_path=db, secret=secret)).secret


@dataclass
class Api:
    client: TestClient[Any, Any]
    tokens: dict[str, str]
    clock: ManualClock
    db: str  # the clinic's `--db` spec (a SQLite path, or a postgresql:// URL under make test-pg)

    def h(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    @property
    def secret(self) -> str:
        """What the app signs links with (conftest's Config(secret="test-secret"), per clinic)."""
        return link_secret(self.db)

    async def event(self, body: dict[str, Any], role: str = "reception") -> Any:
        resp = await self.client.post("/api/events", json=body, headers=self.h(role))
        assert resp.status == 201, await resp.text()
        return await resp.json()


@pytest.fixture
async def api(clinic_db: str, clock: ManualClock) -> AsyncIterator[Api]:
    db = clinic_db
    tokens = await seed_clinic(db)
    config = Config(db_path=db, clock=clock, secret="test-secret", public_url="http://clinic.test")
    async with TestClient(TestServer(create_app(config))) as client:
        yield Api(client, tokens, clock, db)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    db: str  # `--db` spec
    tokens: dict[str, str]
    clock: ManualClock
    port: int = field(default_factory=_free_port)
    runner: web.AppRunner | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # other Config fields, from the next start()

    @property
    def secret(self) -> str:
        """What the app signs links with (see link_secret)."""
        return link_secret(self.db)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> Config:
        return Config(db_path=str(self.db), clock=self.clock, secret="test-secret", public_url=self.base_url,
                      host="127.0.0.1", port=self.port, **self.settings)

    async def start(self) -> None:
        self.runner = web.AppRunner(create_app(self.config()))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def live_server(clinic_db: str, clock: ManualClock) -> AsyncIterator[LiveServer]:
    db = clinic_db
    server = LiveServer(db, await seed_clinic(db), clock)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def eventually(ok: Callable[[], Awaitable[bool]] | Callable[[], bool], what: str, seconds: float = 15) -> None:
    """Until `ok()` holds, bounded by time (never by a count of short sleeps: on a loaded
    2-core machine a second's worth of polls can pass before the server has answered once)."""
    deadline = time.monotonic() + seconds
    while True:
        got = ok()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.02)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for this session: WAITROOM_TEST_DATABASE, or a throwaway
    cluster started now and stopped at the end. Skips (fails under make test / CI) without one."""
    given = os.environ.get("WAITROOM_TEST_DATABASE")
    if given:
        yield given
        return
    try:
        cluster = pg_cluster.start_cluster()
    except pg_cluster.NoPostgres as e:
        if pg_cluster.required():
            pytest.fail(f"PostgreSQL is required under make test and CI: {e}")
        pytest.skip(f"no PostgreSQL here ({e}); make test installs it, or set WAITROOM_TEST_DATABASE")
    try:
        yield cluster.url
    finally:
        cluster.stop()


def _pg_run(url: str, sql: str) -> None:
    """One statement on a fresh connection, in a thread of its own (callable from inside a
    running event loop: the contract tests' async `store` fixture asks for `pg_url` by name)."""
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result(timeout=60)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A PostgreSQL URL whose tables go into an empty schema of this test's own (dropped after)."""
    schema = pg_cluster.new_schema_name()
    _pg_run(pg_server, f"CREATE SCHEMA {schema}")
    try:
        yield pg_cluster.with_params(pg_server, search_path=schema)
    finally:
        _pg_run(pg_server, f"DROP SCHEMA {schema} CASCADE")
