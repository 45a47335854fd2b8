"""The board's line: how long one pass of the estimator's dispatch rule takes (issue 12 item 5).

    .venv/bin/python bench/bench_board_order.py [--runs 20]

Reception's board, the lobby and the status page order each vet's queue with
`estimator.dispatch_order` (the booked-length pass of the estimator's own rule). The board
runs it on a worker thread at most once per store change and 10-second window
(server/web/board.py); this prints what one pass costs for the demo's day and for a day at the
visit cap (2,000 bookings, on one vet and over five), median and worst of `--runs`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from server.domain import DayState, Visit
from server.estimator import dispatch_order

TZ = ZoneInfo("America/Chicago")
DAY = date(2026, 3, 2)
START = datetime(2026, 3, 2, 8, 0, tzinfo=TZ)


async def demo_day() -> DayState:
    from server.demo import seed_day
    from server.store import SqliteStore

    store = await SqliteStore.open(":memory:")
    try:
        async with store.transaction() as tx:
            await seed_day(tx, DAY, "America/Chicago", history_days=1)
        async with store.read() as q:
            return await q.visits_for_day(DAY)
    finally:
        await store.close()


def capped_day(n: int, vets: int) -> DayState:
    """`n` bookings spread over `vets` vets, every third one already checked in."""
    visits = {}
    for i in range(n):
        vid = f"a{i}"
        visits[vid] = Visit(vid, "appointment", f"v{i % vets}", "exam", 15,
                            scheduled=START + timedelta(minutes=0.3 * (i // vets)),
                            arrived=START if i % 3 == 0 else None)
    return DayState(vets=[f"v{j}" for j in range(vets)], visits=visits, vet_unavailable_until={})


def timed(state: DayState, now: datetime, runs: int) -> tuple[float, float, int]:
    took = []
    ordered = 0
    for _ in range(runs):
        t = time.perf_counter()
        order = dispatch_order(state, now)
        took.append((time.perf_counter() - t) * 1000)
        ordered = sum(len(ids) for ids in order.values())
    return statistics.median(took), max(took), ordered


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    now = START + timedelta(hours=2)
    cases = [("demo day", asyncio.run(demo_day())), ("2,000 bookings, one vet", capped_day(2000, 1)),
             ("2,000 bookings, five vets", capped_day(2000, 5))]
    for name, state in cases:
        median, worst, ordered = timed(state, now, args.runs)
        print(f"{name}: {len(state.visits)} visits, {ordered} in line: one pass median {median:.1f} ms, "
              f"worst {worst:.1f} ms")


if __name__ == "__main__":
    main()
