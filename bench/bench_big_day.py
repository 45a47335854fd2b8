"""A day at the visit cap: how long its estimate takes, and how /api/health answers meanwhile.

    .venv/bin/python bench/bench_big_day.py [--visits 2000] [--vets 1]

Issue 11 item 4: 10,000 appointments in one push made the next GET /api/estimates take 37 s
with /api/health blocked for 36 s. Now a day holds at most `max_visits_per_day` (2,000 by
default) and estimates run on a worker thread. This seeds the demo clinic, pushes `--visits`
bookings over `--vets` vets (all on one vet is the worst case: the estimator's cost grows
with the square of a queue), then times one uncached GET /api/estimates while polling
/api/health, and prints the figures. Aim: health p99 < 100 ms while the estimate runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config import Config, ManualClock
from server.demo import seed_day
from server.store import SqliteStore

TZ = ZoneInfo("America/Chicago")
DAY = date(2026, 3, 2)


async def run(visits: int, vets: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "big.db"
        store = await SqliteStore.open(str(db))
        async with store.transaction() as conn:
            tokens = await seed_day(conn, DAY, "America/Chicago", history_days=10, token_prefix="bench")
        await store.close()
        clock = ManualClock(datetime(2026, 3, 2, 7, 50, tzinfo=TZ))
        config = Config(db_path=str(db), clock=clock, secret="bench", public_url="http://bench")
        async with TestClient(TestServer(create_app(config))) as client:
            h = {"Authorization": f"Bearer {tokens['pms']}"}
            start = datetime(2026, 3, 2, 8, 0, tzinfo=TZ)
            span_s = 9 * 3600
            doc: dict[str, Any] = {"appointments": [
                {"id": f"big-{i}", "vet": f"v{1 + i % vets}", "type": "vacc",
                 "scheduled": (start + timedelta(seconds=span_s * i // visits)).isoformat()} for i in range(visits)]}
            t0 = time.perf_counter()
            resp = await client.post("/api/schedule", json=doc, headers=h)
            push_s = time.perf_counter() - t0
            print(f"push of {visits} visits over {vets} vet(s): HTTP {resp.status} in {push_s:.2f} s")
            if resp.status != 200:
                print("  ", (await resp.json())["error"])
                return
            clock.advance(minutes=1)  # past whatever the push itself estimated
            t0 = time.perf_counter()
            slow = asyncio.ensure_future(client.get("/api/estimates", headers=h))
            lat: list[float] = []
            while not slow.done():
                t1 = time.perf_counter()
                assert (await client.get("/api/health")).status == 200
                lat.append(1000 * (time.perf_counter() - t1))
                await asyncio.sleep(0.005)
            est = await slow
            est_s = time.perf_counter() - t0
            n = len((await est.json())["estimates"])
            lat.sort()
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan")
            print(f"GET /api/estimates ({n} estimates): {est_s:.2f} s; /api/health meanwhile: {len(lat)} answers, "
                  f"median {statistics.median(lat) if lat else float('nan'):.1f} ms, p99 {p99:.1f} ms, "
                  f"max {max(lat) if lat else float('nan'):.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--visits", type=int, default=1930, help="added to the demo day's ~62 bookings")
    ap.add_argument("--vets", type=int, default=1)
    args = ap.parse_args()
    asyncio.run(run(args.visits, args.vets))


if __name__ == "__main__":
    main()
