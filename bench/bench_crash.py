"""Crash: a real `waitroom serve` killed with SIGKILL mid-burst, restarted, many times over.

    .venv/bin/python bench/bench_crash.py              # 50 cycles
    .venv/bin/python bench/bench_crash.py --cycles 200 --seed 3

Each cycle starts `waitroom serve` on a file database on loopback, sends a burst of
POST /api/events from several concurrent clients (check-ins, starts, ends, walk-ins,
emergencies and their start/end), kills the server with SIGKILL at a random moment, starts
it again and checks that every event that was answered 2xx is in the events table (same
seq, type and visit) and that each visit's state (GET /api/appointments/{id}) is at least
as far along as the acknowledged events say. `tests/test_reliability_crash.py` runs a few
cycles of the same code.

The notifier's part of issue #7 (no text sent twice, none silently dropped) plugs in at
`NOTIFIER_CHECKS`: a function given the database path and the fake provider's record,
returning what is wrong. It stays empty until the outbox worker runs inside `serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

TZ = ZoneInfo("America/Chicago")
DAY = date(2026, 3, 2)
START = datetime(2026, 3, 2, 7, 50, tzinfo=TZ)
ROLES = ("pms", "kiosk", "reception", "display")
# How far along each status is: an acknowledged event promises at least this much.
RANK = {"booked": 0, "waiting": 1, "in_consult": 2, "done": 3, "noshow": 3, "cancelled": 3}
AFTER = {"checkin": 1, "walkin": 1, "emergency": 1, "start": 2, "emergency_start": 2, "end": 3, "emergency_end": 3}

# Hook for the notifier (issue #7 item 1, texts): each check gets (db path, what the fake
# provider received) after a restart and returns a list of problems (empty = fine).
NOTIFIER_CHECKS: list[Callable[[Path, Any], list[str]]] = []


async def seed(db: Path, *, history_days: int = 10) -> dict[str, str]:
    """The demo clinic's day (3 vets, 08:00-17:00) in `db`; a token per role."""
    from server.demo import demo_history, demo_schedule
    from server.schedule import import_schedule
    from server.store import Clinic, Store, create_token, insert_history, set_clinic

    store = await Store.open(str(db))
    try:
        async with store.transaction() as conn:
            await set_clinic(conn, Clinic("Riverside Animal Clinic", "America/Chicago", "US", "+13125550100"))
            await import_schedule(conn, demo_schedule(DAY, TZ), TZ, "US")
            await insert_history(conn, demo_history(DAY, TZ, days=history_days), TZ)
            return {role: await create_token(conn, role, f"bench-{role}") for role in ROLES}
    finally:
        await store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command() -> list[str]:
    """`waitroom serve` as installed beside this Python, else the same CLI as a module."""
    script = Path(sys.executable).with_name("waitroom")
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]


class ServeProcess:
    """One `waitroom serve` subprocess on loopback, with the demo clock started at `clock`."""

    def __init__(self, db: Path, port: int, clock: datetime, log: Path | None = None) -> None:
        self.db, self.port, self.clock = db, port, clock
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        """Start the process (without waiting for it to answer)."""
        err = self.log.open("ab") if self.log else None
        try:
            self.proc = subprocess.Popen(
                [*serve_command(), "serve", "--db", str(self.db), "--host", "127.0.0.1", "--port", str(self.port),
                 "--clock", self.clock.isoformat()],
                stdout=subprocess.DEVNULL, stderr=err or subprocess.DEVNULL,
                env={**os.environ, "WAITROOM_SECRET": "bench-secret"})
        finally:
            if err:
                err.close()

    async def start(self, timeout: float = 20.0) -> float:
        """Start and wait until /api/health answers; returns seconds taken."""
        t0 = time.perf_counter()
        self.spawn()
        assert self.proc is not None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as s:
            while time.perf_counter() - t0 < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"waitroom serve exited with {self.proc.returncode}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with s.get(f"{self.url}/api/health") as r:
                        if r.status == 200:
                            return time.perf_counter() - t0
                await asyncio.sleep(0.05)
        raise TimeoutError("waitroom serve did not come up")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no chance to flush anything."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


@dataclass
class Ack:
    seq: int
    type: str
    visit: str


@dataclass
class CycleResult:
    sent: int = 0
    acked: list[Ack] = field(default_factory=list)
    refused: int = 0  # 4xx answers (none expected: the plan only sends valid events)
    errors: int = 0  # connection reset / refused: the kill
    restart_s: float = 0.0
    problems: list[str] = field(default_factory=list)


def _day_state(db: Path) -> dict[str, tuple[str, str]]:
    """visit id -> (kind, status) for every visit of the day, read straight from the file."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT id, kind, status FROM appointments WHERE day = ?", (DAY.isoformat(),))
        return {r[0]: (r[1], r[2]) for r in rows}


def _next_event(visit: str, kind: str, status: str) -> dict[str, Any] | None:
    em = kind == "emergency"
    if status == "booked":
        return {"type": "checkin", "appointment": visit}
    if status == "waiting":
        return {"type": "emergency_start", "id": visit} if em else {"type": "start", "appointment": visit}
    if status == "in_consult":
        return {"type": "emergency_end", "id": visit} if em else {"type": "end", "appointment": visit}
    return None


def _new_visit(rng: random.Random, cycle: int) -> dict[str, Any]:
    vet = rng.choice(["v1", "v2", "v3"])
    vid = f"c{cycle}-{uuid.uuid4().hex[:8]}"
    if rng.random() < 0.7:
        return {"type": "walkin", "appointment": {"id": f"w-{vid}", "vet": vet, "type": "sick", "pet": "Biscuit"}}
    return {"type": "emergency", "id": f"e-{vid}", "vet": vet, "expected_min": 30, "pet": "Rex"}


async def _worker(session: aiohttp.ClientSession, url: str, token: str, mine: dict[str, tuple[str, str]],
                  rng: random.Random, cycle: int, out: CycleResult) -> None:
    """Advance this worker's own visits (so no two workers race on one visit) and create new ones."""
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        live = [v for v, (k, s) in mine.items() if _next_event(v, k, s) is not None]
        if live and rng.random() < 0.75:
            v = rng.choice(live)
            body = _next_event(v, *mine[v])
        else:
            body = _new_visit(rng, cycle)
        assert body is not None
        out.sent += 1
        try:
            async with session.post(f"{url}/api/events", json=body, headers=headers) as r:
                data = await r.json(content_type=None) if r.status < 500 else None
                if 200 <= r.status < 300:
                    assert data is not None
                    visit = str(data["appointment"])
                    out.acked.append(Ack(int(data["seq"]), str(data["type"]), visit))
                    created = {"walkin": "walkin", "emergency": "emergency"}
                    kind = created.get(body["type"], mine.get(visit, ("", ""))[0])
                    status = {1: "waiting", 2: "in_consult", 3: "done"}[AFTER[body["type"]]]
                    mine[visit] = (kind, status)
                elif r.status >= 500:
                    out.problems.append(f"{r.status} on {body}")
                else:
                    out.refused += 1
                    out.problems.append(f"{r.status} {data} on {body}")
        except (aiohttp.ClientError, ConnectionError, TimeoutError):
            out.errors += 1
            return  # the server is gone


def verify(db: Path, acked: list[Ack]) -> list[str]:
    """Every acknowledged event is in the log with the same seq, type and visit."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT seq, type, appointment_id FROM events")}
    problems = []
    for a in acked:
        got = rows.get(a.seq)
        if got != (a.type, a.visit):
            problems.append(f"acknowledged event {a} missing after restart (found {got})")
    return problems


async def verify_api(url: str, token: str, acked: list[Ack]) -> list[str]:
    """Each visit the acknowledged events touched is at least as far along through the API."""
    want: dict[str, int] = {}
    for a in acked:
        want[a.visit] = max(want.get(a.visit, 0), AFTER[a.type])
    problems = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        for visit, rank in want.items():
            async with s.get(f"{url}/api/appointments/{visit}") as r:
                if r.status != 200:
                    problems.append(f"GET /api/appointments/{visit}: {r.status} after restart")
                    continue
                status = (await r.json())["status"]
                if RANK[status] < rank:
                    problems.append(f"{visit} is {status} after restart, though an event moving it on was acked")
    return problems


async def crash_cycle(server: ServeProcess, tokens: dict[str, str], cycle: int, rng: random.Random, *,
                      workers: int = 8, kill_after: tuple[float, float] = (0.05, 0.6)) -> CycleResult:
    """One burst against a running server, a SIGKILL at a random moment, a restart, the checks."""
    out = CycleResult()
    state = _day_state(server.db)
    visits = sorted(state)
    rng.shuffle(visits)
    shares: list[dict[str, tuple[str, str]]] = [{} for _ in range(workers)]
    for i, v in enumerate(visits):
        shares[i % workers][v] = state[v]
    conn = aiohttp.TCPConnector(limit=workers, force_close=False)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=10)) as session:
        tasks = [asyncio.create_task(_worker(session, server.url, tokens["reception" if i % 2 else "pms"],
                                             shares[i], random.Random(rng.random()), cycle, out))
                 for i in range(workers)]
        await asyncio.sleep(rng.uniform(*kill_after))
        server.kill()
        await asyncio.gather(*tasks)
    # The next start runs the clinic clock on from a later moment, so no event is "before" an earlier one.
    server.clock = server.clock + timedelta(minutes=3)
    out.restart_s = await server.start()
    out.problems += verify(server.db, out.acked)
    out.problems += await verify_api(server.url, tokens["reception"], out.acked)
    for check in NOTIFIER_CHECKS:
        out.problems += check(server.db, None)
    return out


@contextlib.asynccontextmanager
async def crash_rig(workdir: Path, *, seed_value: int = 1) -> AsyncIterator[tuple[ServeProcess, dict[str, str]]]:
    db = workdir / "clinic.db"
    tokens = await seed(db)
    server = ServeProcess(db, free_port(), START, log=workdir / "serve.log")
    await server.start()
    try:
        yield server, tokens
    finally:
        server.stop()


async def run(cycles: int, seed_value: int, workdir: Path) -> int:
    rng = random.Random(seed_value)
    results: list[CycleResult] = []
    async with crash_rig(workdir) as (server, tokens):
        for c in range(cycles):
            res = await crash_cycle(server, tokens, c, rng)
            results.append(res)
            for p in res.problems:
                print(f"cycle {c}: {p}")
    acked = sum(len(r.acked) for r in results)
    lost = sum(1 for r in results for p in r.problems if "missing" in p)
    restarts = [r.restart_s for r in results]
    print(f"cycles (SIGKILL + restart)        {cycles}")
    print(f"events sent                       {sum(r.sent for r in results)}")
    print(f"events acknowledged (2xx)         {acked}")
    print(f"acknowledged events lost          {lost}")
    print(f"other problems (4xx/5xx/state)    {sum(len(r.problems) for r in results) - lost}")
    print(f"in flight at the kill (no answer) {sum(r.errors for r in results)}")
    print(f"restart to healthy, median / max  {statistics.median(restarts):.2f} s / {max(restarts):.2f} s")
    return 0 if all(not r.problems for r in results) else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cycles", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="waitroom-crash-") as d:
        return asyncio.run(run(args.cycles, args.seed, Path(d)))


if __name__ == "__main__":
    sys.exit(main())
