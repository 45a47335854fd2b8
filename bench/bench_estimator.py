"""Estimator speed: learning 60 days of a 5-vet clinic, and one estimate of a busy 5-vet day.

    .venv/bin/python bench/bench_estimator.py

Targets (issue #3): learning under 2 s; estimates well under 20 ms at p99.
"""

from __future__ import annotations

import statistics
import time
from datetime import date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

from server.demo import TYPES
from server.domain import DayState, Visit
from server.estimator import estimate
from server.learning import learn

TZ = ZoneInfo("America/Chicago")
VETS = [f"v{i}" for i in range(1, 6)]
BOOKED = {t: float(b) for t, _, b in TYPES}


def history(days: int) -> list[Visit]:
    import random

    rng = random.Random(1)
    out = []
    d = date(2026, 3, 2)
    for k in range(days):
        day = d - timedelta(days=k + 1)
        for n, vet in enumerate(VETS):
            t = datetime.combine(day, dtime(8), TZ)
            free = t
            for i in range(24):
                type_id, _, booked = rng.choice(TYPES)
                sched = t + timedelta(minutes=20 * i)
                arrived = sched + timedelta(minutes=rng.gauss(-3, 5))
                start = max(free, arrived)
                end = start + timedelta(minutes=booked * (0.8 + 0.1 * n) * rng.lognormvariate(0, 0.3))
                free = end
                out.append(Visit(f"{day}/{vet}/{i}", "appointment", vet, type_id, booked, scheduled=sched,
                                 arrived=arrived, started=start, ended=end))
    return out


def main() -> None:
    hist = history(60)
    t0 = time.perf_counter()
    model = learn(hist, BOOKED)
    learn_s = time.perf_counter() - t0
    day = date(2026, 3, 2)
    visits = {}
    for vet in VETS:
        for i in range(25):
            sched = datetime.combine(day, dtime(8), TZ) + timedelta(minutes=20 * i)
            v = Visit(f"{vet}-{i}", "appointment", vet, TYPES[i % len(TYPES)][0], 20, scheduled=sched)
            if i < 3:
                v.arrived = sched - timedelta(minutes=5)
            visits[v.id] = v
    state = DayState(vets=VETS, visits=visits)
    times = []
    now = datetime.combine(day, dtime(7, 50), TZ)
    for k in range(200):
        t0 = time.perf_counter()
        estimate(state, now + timedelta(seconds=17 * k), model)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(f"learn: {len(hist)} visits (60 days, 5 vets) in {learn_s * 1000:.0f} ms")
    print(f"estimate: 5 vets x 25 visits, p50 {statistics.median(times) * 1000:.1f} ms, "
          f"p99 {times[int(0.99 * (len(times) - 1))] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
