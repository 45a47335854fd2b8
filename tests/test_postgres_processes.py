"""Several `waitroom serve` processes on one PostgreSQL database (issue 13 item 3): text sending
claims outbox rows with FOR UPDATE SKIP LOCKED under the clinic's advisory lock, so a text is
sent once however many processes run, and a process killed with SIGKILL mid-send loses none: a
live process adopts what it left `sending` and looks each up at the provider before any resend."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from notifier.outbox import NewText
from server.store import Clinic
from server.store.postgres import PgStore
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

EXE = str(Path(sys.executable).parent / "waitroom")
TEXTS = 120


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve(db: str, port: int, twilio: FakeTwilio, **env_more: str) -> asyncio.subprocess.Process:
    """`waitroom serve --db DB` as a process texting through `twilio`, up once /api/health answers."""
    env = {**os.environ, "WAITROOM_SECRET": "test-secret", "WAITROOM_SMS_PROVIDER": "twilio",
           "WAITROOM_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "WAITROOM_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
           "WAITROOM_TWILIO_FROM": "+13125550000", "WAITROOM_TWILIO_BASE_URL": twilio.base_url, **env_more}
    proc = await asyncio.create_subprocess_exec(EXE, "serve", "--db", db, "--port", str(port), env=env,
                                                stderr=asyncio.subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/api/health") as resp:
                    if resp.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            assert proc.returncode is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not come up"
            await asyncio.sleep(0.1)


async def _until(ok: object, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not ok():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.05)


async def test_a_stopped_processs_sending_rows_are_adopted_once_and_a_live_ones_never(pg_url: str) -> None:
    a, b, c = [await PgStore.open(pg_url) for _ in range(3)]
    try:
        now = datetime.now(UTC)
        async with a.transaction() as tx:
            await tx.set_clinic(Clinic("Riverside", "UTC"))
            await tx.insert_texts([NewText(f"t-{i}", f"+1312555{i:04d}", f"text {i}", "delay") for i in range(3)], now)
            claimed = await tx.due_texts(now, 2)
            for row in claimed:
                await tx.mark_text_sending(row.id, now)
        async with b.transaction() as tx:
            assert await tx.adopt_orphaned_texts() == []  # a is alive: its sends are its own
        await a.close()  # as if killed: its connections are gone
        async with b.transaction() as tx:
            adopted = await tx.adopt_orphaned_texts()
        async with c.transaction() as tx:
            assert await tx.adopt_orphaned_texts() == []  # b has them now, and b is alive
        assert [r.id for r in adopted] == [r.id for r in claimed]
        assert all(r.status == "sending" for r in adopted)
    finally:
        for s in (a, b, c):
            await s.close()


async def test_two_processes_send_each_text_once_when_one_is_killed_mid_send(pg_url: str) -> None:
    store = await PgStore.open(pg_url)
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with store.transaction() as tx:
            await tx.set_clinic(Clinic("Riverside", "UTC"))
        async with FakeTwilio(create_delay=0.03) as twilio:
            port_a, port_b = _port(), _port()
            a = await serve(pg_url, port_a, twilio)
            procs.append(a)
            b = await serve(pg_url, port_b, twilio)
            procs.append(b)
            now = datetime.now(UTC)
            # Queued by another process (the test's), in batches: both servers' workers take them.
            for start in range(0, TEXTS, 20):
                async with store.transaction() as tx:
                    await tx.insert_texts([NewText(f"t-{i}", f"+1312555{i:04d}", f"text {i}", "delay")
                                           for i in range(start, start + 20)], now)
            await _until(lambda: len(twilio.accepted) >= TEXTS // 4, "a quarter of the texts sent", 60)
            a.send_signal(signal.SIGKILL)  # mid-send: rows it claimed are left `sending`
            await a.wait()
            at_kill = len(twilio.accepted)
            assert at_kill < TEXTS, "every text had gone before the kill: it proves nothing"
            # The other process goes on sending without it, and answers.
            await _until(lambda: len(twilio.accepted) > at_kill + 10, "the survivor sending", 60)
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port_b}/api/health") as r:
                assert r.status == 200

            async def all_settled() -> bool:
                async with store.read() as q:
                    rows = await q.outbox_rows()
                return all(r.status == "sent" for r in rows)

            # A row the killed process left mid-send is adopted by the survivor within 5 s and
            # waits out the 30 s grace for the provider's list before it is called unsent.
            deadline = time.monotonic() + 90
            while not await all_settled():
                assert time.monotonic() < deadline, "texts left unsent"
                await asyncio.sleep(0.2)
            sent = Counter(m["body"] for m in twilio.accepted)
            assert sorted(sent) == sorted(f"text {i}" for i in range(TEXTS))
            assert [body for body, n in sent.items() if n > 1] == []  # none twice
            async with store.read() as q:
                sids = {r.provider_sid for r in await q.outbox_rows()}
            assert sids == {m["sid"] for m in twilio.accepted}
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(p.wait(), 15)
                except TimeoutError:
                    p.kill()
                    await p.wait()
        await store.close()
