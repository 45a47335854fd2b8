"""Estimator speed and learning: learning a 5-vet clinic (with and without the range
calibration that replays its recent days), one estimate of a busy 5-vet day, and how the
estimate moves as today's consults show a vet running slow.

    .venv/bin/python bench/bench_estimator.py

Targets (issues #3, #14): learning under 2 s; estimates well under 20 ms at p99.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

from server.demo import TYPES
from server.domain import DayState, Visit
from server.estimator import estimate, today
from server.learning import learn

TZ = ZoneInfo("America/Chicago")
VETS = [f"v{i}" for i in range(1, 6)]
BOOKED = {t: float(b) for t, _, b in TYPES}
DAY = date(2026, 3, 2)


def history(days: int) -> list[Visit]:
    rng = random.Random(1)
    out = []
    for k in range(days):
        day = DAY - timedelta(days=k + 1)
        for n, vet in enumerate(VETS):
            t = datetime.combine(day, dtime(8), TZ)
            free = t
            for i in range(24):
                type_id, _, booked = rng.choice(TYPES)
                sched = t + timedelta(minutes=20 * i)
                arrived = sched + timedelta(minutes=rng.gauss(-3, 5))
                start = max(free, arrived, sched - timedelta(minutes=5))
                end = start + timedelta(minutes=booked * (0.8 + 0.1 * n) * rng.lognormvariate(0, 0.3))
                free = end + timedelta(minutes=1)
                out.append(Visit(f"{day}/{vet}/{i}", "appointment", vet, type_id, booked, scheduled=sched,
                                 arrived=arrived, started=start, ended=end))
    return out


def day_state() -> DayState:
    visits = {}
    for vet in VETS:
        for i in range(25):
            sched = datetime.combine(DAY, dtime(8), TZ) + timedelta(minutes=20 * i)
            v = Visit(f"{vet}-{i}", "appointment", vet, TYPES[i % len(TYPES)][0], 20, scheduled=sched)
            if i < 3:
                v.arrived = sched - timedelta(minutes=5)
            visits[v.id] = v
    return DayState(vets=VETS, visits=visits)


def timed(f: object, *a: object, **kw: object) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = f(*a, **kw)  # type: ignore[operator]
    return out, time.perf_counter() - t0


def main() -> None:
    for days in (3, 20, 60):
        hist = history(days)
        _, fit_s = timed(learn, hist, BOOKED, calibrate=False)
        model, learn_s = timed(learn, hist, BOOKED)
        print(f"learn: {days:2d} days ({len(hist)} visits, 5 vets): fit {fit_s * 1000:.0f} ms, "
              f"with range calibration {learn_s * 1000:.0f} ms")
    hist = history(20)
    model = learn(hist, BOOKED)
    state = day_state()
    times = []
    now = datetime.combine(DAY, dtime(7, 50), TZ)
    for k in range(200):
        t0 = time.perf_counter()
        estimate(state, now + timedelta(seconds=17 * k), model)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(f"estimate: 5 vets x 25 visits, p50 {statistics.median(times) * 1000:.1f} ms, "
          f"p99 {times[int(0.99 * (len(times) - 1))] * 1000:.1f} ms")

    # Today's pace: vet v1's first consults run at twice their usual length.
    t = datetime.combine(DAY, dtime(8), TZ)
    base = estimate(state, t, model)["v1-12"].start
    print("v1 runs slow today; estimate for v1's 12th client (v2's 12th for comparison):")
    for done in range(0, 9, 2):
        s = day_state()
        clock = t
        for i in range(done):
            v = s.visits[f"v1-{i}"]
            v.arrived, v.started = clock - timedelta(minutes=5), clock
            clock += timedelta(minutes=2 * model.expected_minutes("v1", v.type, v.booked_min))
            v.ended = clock
        est = estimate(s, clock, model)
        shift = (est["v1-12"].start - base).total_seconds() / 60
        w_off, m_day, _, m_off, _ = today(s, clock, model).pace["v1"]
        pace = (1 - w_off) * m_day + w_off * m_off
        print(f"  after {done} slow consults ({clock:%H:%M}): today's pace x{2.718281828 ** pace:.2f}, "
              f"v1-12 at {est['v1-12'].start:%H:%M} ({shift:+.0f} min vs 08:00's estimate), "
              f"v2-12 at {est['v2-12'].start:%H:%M}")


if __name__ == "__main__":
    main()
