"""One `waitroom serve` process in group mode (`--db postgresql://...?clinic=*`) serving N clinics
of one database (issue 13 item 2): how long until every clinic answers, the process's memory,
how many PostgreSQL connections it holds (one pool and one LISTEN connection for the group,
where a process per clinic holds a pool and a listener each), and estimates read round robin
over every clinic by its own token.

    .venv/bin/python bench/bench_group_mode.py                 # 50 clinics, 10 s of reads
    .venv/bin/python bench/bench_group_mode.py --clinics 200 --seconds 20

Each clinic is the demo clinic (server/demo.py: seed_day, 3 past days), under its own id.
PostgreSQL: WAITROOM_TEST_DATABASE=postgresql://... or a throwaway cluster started here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from server.demo import seed_day  # noqa: E402
from server.store import open_store  # noqa: E402
from tests import pg_cluster  # noqa: E402

EXE = str(Path(sys.executable).parent / "waitroom")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def seed(db: str, clinic: str) -> str:
    store = await open_store(pg_cluster.with_params(db, clinic=clinic))
    try:
        async with store.transaction() as tx:
            tokens = await seed_day(tx, datetime.now(UTC).date(), "America/Chicago", history_days=3,
                                    token_prefix=clinic)
    finally:
        await store.close()
    return tokens["reception"]


async def run(db: str, clinics: int, seconds: float) -> None:
    t0 = time.perf_counter()
    tokens = [await seed(db, f"c{i:03d}") for i in range(clinics)]
    print(f"seeded {clinics} clinics in {time.perf_counter() - t0:.1f} s")
    port = _port()
    env = {**os.environ, "WAITROOM_SECRET": "bench", "WAITROOM_PUBLIC_URL": "http://vets.test"}
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(EXE, "serve", "--db", pg_cluster.with_params(db, clinic="*"),
                                                "--port", str(port), env=env, stderr=asyncio.subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"{base}/api/health") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
            up = time.perf_counter() - started

            async def estimates(token: str) -> tuple[int, float]:
                t = time.perf_counter()
                async with http.get(f"{base}/api/estimates", headers={"Authorization": f"Bearer {token}"}) as r:
                    await r.read()
                    return r.status, time.perf_counter() - t

            # Every clinic's first answer (a clinic not started yet is started by its first token).
            firsts = await asyncio.gather(*(estimates(t) for t in tokens))
            all_up = time.perf_counter() - started
            assert all(s == 200 for s, _ in firsts), [s for s, _ in firsts]
            conn = await asyncpg.connect(db.split("?")[0])
            try:
                held = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                                           "'waitroom %'")
            finally:
                await conn.close()
            rss = _rss_mb(proc.pid)
            lat: list[float] = []
            errors = 0
            stop = time.perf_counter() + seconds

            async def reader(k: int) -> None:
                nonlocal errors
                i = k
                while time.perf_counter() < stop:
                    status, took = await estimates(tokens[i % len(tokens)])
                    i += 7
                    if status != 200:
                        errors += 1
                    lat.append(took)

            await asyncio.gather(*(reader(k) for k in range(20)))
            lat.sort()
            print(f"group mode, {clinics} clinics in one process: /api/health after {up:.1f} s, every clinic's "
                  f"first estimates after {all_up:.1f} s; RSS {rss:.0f} MB ({rss / clinics:.1f} MB a clinic); "
                  f"{held} PostgreSQL connections held (a process per clinic: at least {2 * clinics})")
            print(f"reads, 20 readers round robin over every clinic for {seconds:.0f} s: "
                  f"{len(lat) / seconds:.0f} req/s, p50 {1000 * statistics.median(lat):.1f} ms, "
                  f"p99 {1000 * lat[int(0.99 * (len(lat) - 1))]:.1f} ms, {errors} errors")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clinics", type=int, default=50)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    url = os.environ.get("WAITROOM_TEST_DATABASE")
    cluster = None
    if not url:
        cluster = pg_cluster.start_cluster()
        url = cluster.url
    db = pg_cluster.with_params(url, search_path=f"bench_gm_{int(time.time())}")
    try:
        asyncio.run(_with_schema(url, db, args))
    finally:
        if cluster is not None:
            cluster.stop()


async def _with_schema(url: str, db: str, args: argparse.Namespace) -> None:
    schema = db.rsplit("search_path=", 1)[1]
    conn = await asyncpg.connect(url.split("?")[0])
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    await run(db, args.clinics, args.seconds)


if __name__ == "__main__":
    main()
