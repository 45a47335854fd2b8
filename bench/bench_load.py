"""Load: 200 clients reading estimates and 20 posting events against `waitroom serve`, beside bare aiohttp.

    .venv/bin/python bench/bench_load.py                 # 30 s per server
    .venv/bin/python bench/bench_load.py --seconds 5     # a quick look

Both servers run as their own process on loopback and are measured in the same run by the
same client code: first a bare aiohttp app answering "hello" to everything, then
`waitroom serve` on a file database seeded with the demo clinic's day. Each of `--readers`
clients loops on GET /api/estimates (display token); each of `--posters` clients posts an
event (check-in / start / end of a booked visit, a walk-in or an emergency and its
start / end) every `--post-interval` seconds on average (random, independent gaps), far more
than any clinic makes. Printed:
requests/s and its ratio to the bare server, p50/p99 latency of reads and of posts, errors.
Then 20 bodies of 10 MB are posted to /api/events and the server's RSS growth is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench.bench_crash import DAY, START, ServeProcess, free_port, seed


@dataclass
class Stats:
    seconds: float = 0.0
    reads: list[float] = field(default_factory=list)
    posts: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    cpu: float = float("nan")  # the server process's CPU use, in cores

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    @property
    def rps(self) -> float:
        return (len(self.reads) + len(self.posts)) / self.seconds


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000


def _events(rng: random.Random, booked: list[str], n: int) -> Any:
    """An endless stream of valid events for one poster; the day's pending visits stay bounded."""
    for i in itertools.count():
        vet = rng.choice(["v1", "v2", "v3"])
        pick = rng.random()
        if booked and pick < 0.4:
            a = booked.pop()
            yield from ({"type": t, "appointment": a} for t in ("checkin", "start", "end"))
        elif pick < 0.8:
            w = f"w-load-{n}-{i}"
            yield {"type": "walkin", "appointment": {"id": w, "vet": vet, "type": "sick", "pet": "Biscuit"}}
            yield {"type": "start", "appointment": w}
            yield {"type": "end", "appointment": w}
        else:
            e = f"e-load-{n}-{i}"
            yield {"type": "emergency", "id": e, "vet": vet, "expected_min": 30}
            yield {"type": "emergency_start", "id": e}
            yield {"type": "emergency_end", "id": e}


async def load(url: str, seconds: float, readers: int, posters: int, tokens: dict[str, str] | None,
               post_interval: float, booked: list[str]) -> Stats:
    stats = Stats()
    read_h = {"Authorization": f"Bearer {tokens['display']}"} if tokens else {}
    post_h = {"Authorization": f"Bearer {tokens['pms']}"} if tokens else {}
    rng = random.Random(1)
    rng.shuffle(booked)
    deadline = 0.0

    async def reader(s: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                async with s.get(f"{url}/api/estimates", headers=read_h) as r:
                    await r.read()
                    if r.status != 200:
                        stats.error(f"GET {r.status}")
                        continue
            except (aiohttp.ClientError, TimeoutError) as e:
                stats.error(f"GET {type(e).__name__}")
                continue
            stats.reads.append(time.perf_counter() - t0)

    async def poster(s: aiohttp.ClientSession, n: int) -> None:
        prng = random.Random(n)
        events = _events(prng, booked, n)
        # Posters are independent people: each starts at a random moment and waits a random
        # time (mean `post_interval`) between events, so 20 of them do not post in lockstep.
        await asyncio.sleep(prng.uniform(0, post_interval))
        while time.perf_counter() < deadline:
            body = next(events)
            t0 = time.perf_counter()
            try:
                async with s.post(f"{url}/api/events", json=body, headers=post_h) as r:
                    await r.read()
                    if r.status // 100 != 2:
                        stats.error(f"POST {r.status}")
                    else:
                        stats.posts.append(time.perf_counter() - t0)
            except (aiohttp.ClientError, TimeoutError) as e:
                stats.error(f"POST {type(e).__name__}")
            await asyncio.sleep(prng.expovariate(1 / post_interval))

    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as s:
        # Warm up: connections open, caches and JIT-free paths touched, before the clock starts.
        deadline = time.perf_counter() + 1.0
        await asyncio.gather(*(reader(s) for _ in range(readers)))
        stats.reads.clear()
        stats.errors.clear()
        t0 = time.perf_counter()
        deadline = t0 + seconds
        await asyncio.gather(*(reader(s) for _ in range(readers)), *(poster(s, n) for n in range(posters)))
        stats.seconds = time.perf_counter() - t0
    return stats


def bare_app() -> Any:
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    return app


def _spawn_bare(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--serve-bare", str(port)])


async def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError("bare server exited")
            with contextlib.suppress(aiohttp.ClientError):
                async with s.get(f"{url}/api/health") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise TimeoutError("bare server did not come up")


def _cpu_s(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def _rss_mb(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


async def big_bodies(url: str, token: str, pid: int, n: int = 20, size: int = 10 * 2**20) -> tuple[list[int], float]:
    """Post n bodies of `size` bytes; the statuses and the server's RSS growth in MB."""
    before = _rss_mb(pid)
    statuses = []
    body = b'{"type": "urgent", "note": "' + b"x" * size + b'"}'
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            try:
                async with s.post(f"{url}/api/events", data=body, headers={
                        "Authorization": f"Bearer {token}", "Content-Type": "application/json"}) as r:
                    statuses.append(r.status)
            except aiohttp.ClientError:
                statuses.append(0)  # the server may close the connection after a 413
    return statuses, _rss_mb(pid) - before


async def run(args: argparse.Namespace, workdir: Path) -> int:
    import sqlite3

    db = workdir / "clinic.db"
    tokens = await seed(db)
    with contextlib.closing(sqlite3.connect(db)) as c:
        booked = [r[0] for r in c.execute("SELECT id FROM appointments WHERE day = ? AND status = 'booked'",
                                          (DAY.isoformat(),))]

    bare_port = free_port()
    bare = _spawn_bare(bare_port)
    try:
        await _wait_up(f"http://127.0.0.1:{bare_port}", bare)
        b = await load(f"http://127.0.0.1:{bare_port}", args.seconds, args.readers, args.posters, None,
                       args.post_interval, list(booked))
    finally:
        bare.terminate()
        bare.wait()

    server = ServeProcess(db, free_port(), START, log=workdir / "serve.log")
    await server.start()
    try:
        assert server.proc is not None
        cpu0 = _cpu_s(server.proc.pid)
        w = await load(server.url, args.seconds, args.readers, args.posters, tokens, args.post_interval,
                       list(booked))
        w.cpu = (_cpu_s(server.proc.pid) - cpu0) / (w.seconds + 1.0)  # + the 1 s warm-up
        statuses, rss_growth = await big_bodies(server.url, tokens["pms"], server.proc.pid)
    finally:
        server.stop()

    print(f"{args.readers} readers + {args.posters} posters (one event each per {args.post_interval} s), "
          f"{args.seconds:.0f} s per server, loopback, {os.cpu_count()} CPUs")
    print(f"{'':28}{'req/s':>9}{'read p50':>10}{'read p99':>10}{'post p50':>10}{'post p99':>10}  errors")
    for name, s in (("bare aiohttp hello", b), ("waitroom serve (file db)", w)):
        print(f"{name:28}{s.rps:9.0f}{pct(s.reads, 50):8.1f}ms{pct(s.reads, 99):8.1f}ms"
              f"{pct(s.posts, 50):8.1f}ms{pct(s.posts, 99):8.1f}ms  {sum(s.errors.values())} {s.errors or ''}")
    print(f"ratio to bare (req/s)       {w.rps / b.rps:.2f}")
    print(f"events posted               {len(w.posts)}")
    print(f"server CPU use              {w.cpu:.2f} cores")
    mean_read = statistics.mean(w.reads) * 1000 if w.reads else float("nan")
    print(f"mean read latency           {mean_read:.1f} ms")
    print(f"10 MB bodies x {len(statuses)}: statuses {sorted(set(statuses))}, server RSS growth {rss_growth:.1f} MB")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--readers", type=int, default=200)
    p.add_argument("--posters", type=int, default=20)
    p.add_argument("--post-interval", type=float, default=1.0)
    p.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_bare:
        from aiohttp import web

        web.run_app(bare_app(), host="127.0.0.1", port=args.serve_bare, print=None, access_log=None)
        return 0
    with tempfile.TemporaryDirectory(prefix="waitroom-load-") as d:
        return asyncio.run(run(args, Path(d)))


if __name__ == "__main__":
    sys.exit(main())
