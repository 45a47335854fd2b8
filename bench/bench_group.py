"""A group of clinics on one PostgreSQL database (issue 13 item 6), through 1, 2 and 4
`waitroom serve` processes per clinic, on loopback; SQLite for one clinic in the same run.

    .venv/bin/python bench/bench_group.py                     # 10 clinics, 15 s a round
    .venv/bin/python bench/bench_group.py --clinics 200 --procs 1 --seconds 30

Each clinic is seeded from a day of ../shared/replay/public/ (its vets, types, history and
schedule: a different file per clinic, round robin) into its own `?clinic=` of one database
(fresh clinics each round).
One server process serves one clinic (`--db postgresql://...?clinic=ID`); a round starts P
processes per clinic. Per clinic, one poster replays the day's events in order (POST
/api/events with the pms token, at their own times: the server's clock is started on the day)
and two readers poll GET /api/estimates (display token), each request to the clinic's next
process in turn, as a reverse proxy would. Printed per round: events/s, read and write p50/p99,
and the ratio of events/s to one process per clinic.

In the last round with 2 or more processes per clinic, one process of the first clinic is
killed with SIGKILL half way: its requests go to the clinic's other processes (a proxy's retry),
and afterwards every acknowledged event must be in the database (0 lost) and the other
processes must have kept answering. (Texts sent once across processes and a kill:
tests/test_postgres_processes.py.)

PostgreSQL: WAITROOM_TEST_DATABASE=postgresql://... or a throwaway cluster started here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPLAY = HERE.parent.parent / "shared" / "replay"
sys.path[:0] = [str(HERE.parent), str(REPLAY)]

import aiohttp  # noqa: E402
from score import events_for  # noqa: E402  (../shared/replay/score.py: the day as a stream of events)

from server.replay import Replay  # noqa: E402
from server.store import open_store  # noqa: E402
from tests import pg_cluster  # noqa: E402

EXE = str(Path(sys.executable).parent / "waitroom")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _iso(t: datetime) -> str:
    return t.isoformat()


@dataclass
class Clinic:
    db: str
    day: dict[str, Any]
    tokens: dict[str, str] = field(default_factory=dict)
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    dead: set[int] = field(default_factory=set)  # ports of killed processes
    turn: itertools.count[int] = field(default_factory=itertools.count)

    def next_url(self) -> str:
        live = [p for p in self.ports if p not in self.dead]
        return f"http://127.0.0.1:{live[next(self.turn) % len(live)]}"


async def seed(db: str, day: dict[str, Any]) -> dict[str, str]:
    store = await open_store(db)
    try:
        rp = Replay(store, texts=False)  # type: ignore[arg-type]
        await rp.handle({"type": "clinic", **day["clinic"]})
        await rp.handle({"type": "history", "days": day["history"]})
        await rp.handle({"type": "schedule", "date": day["day"]["date"], "appointments": [
            {k: v[k] for k in ("id", "vet", "type", "booked_min", "scheduled", "pet")}
            for v in day["day"]["visits"] if v["kind"] == "appointment"]})
        async with store.transaction() as tx:
            now = datetime.now().astimezone()
            return {role: await tx.create_token(role, f"bench-{role}", now) for role in ("pms", "display")}
    finally:
        await store.close()


async def start(clinic: Clinic, n: int) -> None:
    first = min(e["at"] for e in events_for(clinic.day) if e["type"] != "query")
    clock = (first - timedelta(minutes=5)).isoformat()
    for _ in range(n):
        port = _port()
        proc = await asyncio.create_subprocess_exec(
            EXE, "serve", "--db", clinic.db, "--host", "127.0.0.1", "--port", str(port), "--clock", clock,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "WAITROOM_SECRET": "bench-secret"})
        clinic.procs.append(proc)
        clinic.ports.append(port)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        for port in clinic.ports:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with s.get(f"http://127.0.0.1:{port}/api/health") as r:
                        if r.status == 200:
                            break
                if time.monotonic() > deadline:
                    raise TimeoutError("a server did not come up")
                await asyncio.sleep(0.1)


async def stop(clinic: Clinic) -> None:
    for p in clinic.procs:
        if p.returncode is None:
            p.send_signal(signal.SIGTERM)
    for p in clinic.procs:
        try:
            await asyncio.wait_for(p.wait(), 20)
        except TimeoutError:
            p.kill()
            await p.wait()
    clinic.procs, clinic.ports, clinic.dead = [], [], set()


@dataclass
class Tally:
    reads: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    acked: dict[str, list[int]] = field(default_factory=dict)  # clinic db -> acknowledged seqs
    errors: int = 0
    retried: int = 0
    finished: int = 0  # posters that ran out of the day's events before the round's end
    last_post: float = 0.0  # when the last poster stopped (monotonic)


async def _request(http: aiohttp.ClientSession, clinic: Clinic, method: str, path: str, token: str,
                   body: Any, tally: Tally) -> tuple[int, Any]:
    """One request to the clinic's next live process; on a connection failure (a killed process)
    the next one, as a reverse proxy retries."""
    for _ in range(len(clinic.ports)):
        url = clinic.next_url()
        try:
            async with http.request(method, url + path, json=body,
                                    headers={"Authorization": f"Bearer {token}"}) as r:
                return r.status, await r.json() if r.content_type == "application/json" else None
        except (aiohttp.ClientConnectionError, TimeoutError):
            tally.retried += 1
            clinic.dead.add(int(url.rsplit(":", 1)[1]))
    raise RuntimeError("no process of the clinic answers")


async def poster(http: aiohttp.ClientSession, clinic: Clinic, until: float, tally: Tally) -> None:
    try:
        await _post_day(http, clinic, until, tally)
    finally:
        tally.last_post = max(tally.last_post, time.monotonic())


async def _post_day(http: aiohttp.ClientSession, clinic: Clinic, until: float, tally: Tally) -> None:
    for e in events_for(clinic.day):
        if time.monotonic() >= until:
            return
        if e["type"] == "query":
            continue
        body = {**e, "at": _iso(e["at"])}
        t0 = time.perf_counter()
        status, answer = await _request(http, clinic, "POST", "/api/events", clinic.tokens["pms"], body, tally)
        tally.writes.append(time.perf_counter() - t0)
        if status == 201:
            tally.acked.setdefault(clinic.db, []).append(int(answer["seq"]))
        elif status >= 500:
            tally.errors += 1
    tally.finished += 1


async def reader(http: aiohttp.ClientSession, clinic: Clinic, until: float, tally: Tally) -> None:
    while time.monotonic() < until:
        t0 = time.perf_counter()
        status, _ = await _request(http, clinic, "GET", "/api/estimates", clinic.tokens["display"], None, tally)
        tally.reads.append(time.perf_counter() - t0)
        if status != 200:
            tally.errors += 1


def _p(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[q - 1] * 1000 if len(xs) >= 2 else float("nan")


async def one_round(clinics: list[Clinic], procs: int, seconds: float, *, kill: bool) -> tuple[float, Tally]:
    for c in clinics:
        await start(c, procs)
    tally = Tally()
    until = time.monotonic() + seconds
    killer = None
    if kill and procs >= 2:
        async def kill_one() -> None:
            await asyncio.sleep(seconds / 2)
            victim = clinics[0].procs[0]
            victim.send_signal(signal.SIGKILL)
            clinics[0].dead.add(clinics[0].ports[0])
            print(f"  killed one of {clinics[0].db.rsplit('clinic=', 1)[1]}'s {procs} processes (SIGKILL) "
                  f"at {seconds / 2:.0f} s")
        killer = asyncio.create_task(kill_one())
    t0 = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        await asyncio.gather(*(poster(http, c, until, tally) for c in clinics),
                             *(reader(http, c, until, tally) for c in clinics for _ in range(2)))
    took = tally.last_post - t0  # events/s over the time the posters were posting
    if killer is not None:
        await killer
    for c in clinics:
        await stop(c)
    return took, tally


async def lost_events(tally: Tally) -> int:
    lost = 0
    for db, seqs in tally.acked.items():
        store = await open_store(db)
        try:
            async with store.read() as q:
                have = {e.seq for e in await q.events_since(0)}
        finally:
            await store.close()
        lost += len(set(seqs) - have)
    return lost


def report(label: str, took: float, tally: Tally, base: float | None) -> float:
    n = sum(len(s) for s in tally.acked.values())
    rate = n / took
    ratio = f", {rate / base:.2f}x one process" if base else ""
    print(f"{label}: {rate:7.1f} events/s{ratio}; writes p50 {_p(tally.writes, 50):.0f} ms p99 "
          f"{_p(tally.writes, 99):.0f} ms; reads p50 {_p(tally.reads, 50):.0f} ms p99 {_p(tally.reads, 99):.0f} ms "
          f"({len(tally.reads)} reads); errors {tally.errors}"
          + (f"; {tally.finished} clinic(s) posted their whole day" if tally.finished else ""))
    return rate


async def main(args: argparse.Namespace) -> None:
    days = [json.loads(p.read_text()) for p in sorted((REPLAY / "public").glob("*.json"))]
    folder = tempfile.mkdtemp(prefix="bench-group-")
    cluster = None
    url = os.environ.get("WAITROOM_TEST_DATABASE")
    if not url:
        cluster = pg_cluster.start_cluster()
        url = cluster.url
    try:
        base_url = pg_cluster.with_params(url, search_path=f"bench_{int(time.time())}")
        import asyncpg
        conn = await asyncpg.connect(url)
        await conn.execute(f"CREATE SCHEMA {base_url.rsplit('search_path=', 1)[1]}")
        await conn.close()
        sqlite = Clinic(os.path.join(folder, "one.db"), days[0])
        sqlite.tokens = await seed(sqlite.db, days[0])
        took, tally = await one_round([sqlite], 1, args.seconds, kill=False)
        report("SQLite, 1 clinic, 1 process", took, tally, None)
        base = None
        rounds = [int(x) for x in args.procs.split(",")]
        for k, procs in enumerate(rounds):
            # Fresh clinics each round (a replayed day cannot be replayed twice on the same clinic).
            t0 = time.perf_counter()
            clinics = []
            for i in range(args.clinics):
                db = pg_cluster.with_params(base_url, clinic=f"r{k}c{i:03d}")
                day = days[i % len(days)]
                clinics.append(Clinic(db, day, await seed(db, day)))
            print(f"seeded {args.clinics} clinics in one database in {time.perf_counter() - t0:.1f} s "
                  f"(replay days {', '.join(sorted({c.day['name'] for c in clinics})[:3])}, ...)")
            took, tally = await one_round(clinics, procs, args.seconds, kill=(k == len(rounds) - 1))
            rate = report(f"PostgreSQL, {args.clinics} clinics x {procs} process(es)", took, tally, base)
            base = base or rate
            if k == len(rounds) - 1 and procs >= 2:
                print(f"  after the kill: {await lost_events(tally)} acknowledged events lost, "
                      f"{tally.retried} requests retried on another process, {tally.errors} errors")
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--clinics", type=int, default=10)
    p.add_argument("--procs", default="1,2,4", help="processes per clinic, one round each")
    p.add_argument("--seconds", type=float, default=15.0)
    asyncio.run(main(p.parse_args()))
