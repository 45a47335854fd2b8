"""Estimator speed and learning: learning a 5-vet clinic (with and without the range
calibration that replays its recent days), one estimate of a day by its size (the whole clinic,
as a query needs it, and one vet, as an event needs it), the replay's answers by day size (the
scorer's latency: every event and query through `waitroom replay`'s real path, texts on), and
how the estimate moves as today's consults show a vet running slow.

    .venv/bin/python bench/bench_estimator.py

Targets (issues #3, #14): learning under 2 s; replay answers p99 <= 20 ms.
Wall times move with the machine's load (printed beside them); CPU times much less.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from zoneinfo import ZoneInfo

from server.demo import TYPES
from server.domain import DayState, Visit
from server.estimator import estimate, today
from server.learning import learn
from server.replay import run as run_replay

TZ = ZoneInfo("America/Chicago")
VETS = [f"v{i}" for i in range(1, 6)]
BOOKED = {t: float(b) for t, _, b in TYPES}
DAY = date(2026, 3, 2)


def history(days: int, vets: list[str] = VETS) -> list[Visit]:
    rng = random.Random(1)
    out = []
    for k in range(days):
        day = DAY - timedelta(days=k + 1)
        for n, vet in enumerate(vets):
            t = datetime.combine(day, dtime(8), TZ)
            free = t
            for i in range(24):
                type_id, _, booked = rng.choice(TYPES)
                sched = t + timedelta(minutes=20 * i)
                arrived = sched + timedelta(minutes=rng.gauss(-3, 5))
                start = max(free, arrived, sched - timedelta(minutes=5))
                end = start + timedelta(minutes=booked * (0.8 + 0.1 * (n % 5)) * rng.lognormvariate(0, 0.3))
                free = end + timedelta(minutes=1)
                out.append(Visit(f"{day}/{vet}/{i}", "appointment", vet, type_id, booked, scheduled=sched,
                                 arrived=arrived, started=start, ended=end))
    return out


def day_state(vets: list[str] = VETS, per_vet: int = 25) -> DayState:
    visits = {}
    for vet in vets:
        for i in range(per_vet):
            sched = datetime.combine(DAY, dtime(8), TZ) + timedelta(minutes=20 * i)
            v = Visit(f"{vet}-{i}", "appointment", vet, TYPES[i % len(TYPES)][0], 20, scheduled=sched)
            if i < 3:
                v.arrived = sched - timedelta(minutes=5)
            visits[v.id] = v
    return DayState(vets=list(vets), visits=visits)


def _iso(t: datetime) -> str:
    return t.isoformat()


def replay_day(vets: list[str], per_vet: int, history_days: int = 20) -> list[dict[str, object]]:
    """A clinic day in the replay protocol (../shared/replay/PROTOCOL.md), as the scorer sends
    it: history, bookings every 20 min per vet, and what happened (late and early arrivals, a
    no-show in 20, one walk-in per vet, consults of varied length), with a query every 10 min
    and at each check-in."""
    rng = random.Random(7)
    hist = history(history_days, vets)
    by_day: dict[str, list[dict[str, object]]] = {}
    for v in hist:
        assert v.scheduled is not None
        by_day.setdefault(v.scheduled.date().isoformat(), []).append({
            "id": v.id, "kind": v.kind, "vet": v.vet, "type": v.type, "booked_min": v.booked_min,
            "scheduled": _iso(v.scheduled), "arrived": v.arrived and _iso(v.arrived),
            "started": v.started and _iso(v.started), "ended": v.ended and _iso(v.ended)})
    lines: list[dict[str, object]] = [
        {"type": "clinic", "tz_offset": "-06:00", "vets": [{"id": v, "name": f"Dr. {v}"} for v in vets],
         "appointment_types": [{"id": t, "name": name, "booked_min": b} for t, name, b in TYPES]},
        {"type": "history", "days": [{"date": d, "visits": vs} for d, vs in sorted(by_day.items())]}]
    tz = timezone(timedelta(hours=-6))
    booked, events = [], []
    order = {"end": 0, "noshow": 1, "checkin": 2, "walkin": 2, "start": 3, "query": 4}
    for n, vet in enumerate(vets):
        queue = []
        for i in range(per_vet):
            type_id, _, minutes = TYPES[(i + n) % len(TYPES)]
            sched = datetime.combine(DAY, dtime(8), tz) + timedelta(minutes=20 * i)
            vid = f"{vet}-{i}"
            booked.append({"id": vid, "vet": vet, "type": type_id, "booked_min": minutes, "scheduled": _iso(sched),
                           "pet": f"Pet {vid}"})
            if rng.random() < 0.05:
                events.append({"type": "noshow", "at": sched + timedelta(minutes=20), "appointment": vid})
                continue
            arrived = sched + timedelta(minutes=rng.gauss(-3, 6))
            events.append({"type": "checkin", "at": arrived, "appointment": vid})
            queue.append((sched, arrived, vid, minutes))
        walk_at = datetime.combine(DAY, dtime(10, 30), tz) + timedelta(minutes=7 * n)
        events.append({"type": "walkin", "at": walk_at, "appointment": {
            "id": f"{vet}-w", "vet": vet, "type": "sick", "booked_min": 20, "pet": "Walk-in"}})
        queue.append((walk_at, walk_at, f"{vet}-w", 20))
        free = datetime.combine(DAY, dtime(8), tz)
        for sched, arrived, vid, minutes in sorted(queue):
            start = max(free, arrived, sched - timedelta(minutes=5))
            free = start + timedelta(minutes=minutes * rng.lognormvariate(0, 0.35))
            events.append({"type": "start", "at": start, "appointment": vid})
            events.append({"type": "end", "at": free, "appointment": vid})
            free += timedelta(minutes=1)
    last = max(e["at"] for e in events)  # type: ignore[type-var]
    t = datetime.combine(DAY, dtime(7, 50), tz)
    queries = set()
    while t <= last:  # type: ignore[operator]
        queries.add(t)
        t += timedelta(minutes=10)
    queries |= {e["at"] for e in events if e["type"] in ("checkin", "walkin")}
    events += [{"type": "query", "at": q} for q in queries]
    events.sort(key=lambda e: (e["at"], order[str(e["type"])]))  # type: ignore[return-value]
    for i, e in enumerate(x for x in events if x["type"] == "query"):
        e["id"] = f"q{i + 1}"
    lines.append({"type": "schedule", "date": DAY.isoformat(), "appointments": booked})
    return lines + [{**e, "at": _iso(e["at"])} for e in events]  # type: ignore[arg-type]


class _Lines:
    """The day's lines as `waitroom replay` reads them, noting when each answer's work began:
    at the first line after the previous answer (the scorer sends a query's events just
    before it, so its latency covers them)."""

    def __init__(self, lines: list[dict[str, object]]) -> None:
        self.lines = [json.dumps(x) + "\n" for x in lines]
        self.began: tuple[float, float] | None = None
        self.answers: list[tuple[float, float]] = []  # (wall s, CPU s)

    def __iter__(self) -> Iterator[str]:
        for line in self.lines:
            if self.began is None:
                self.began = (time.perf_counter(), time.process_time())
            yield line

    def write(self, text: str) -> None:
        if text.strip() and self.began is not None:
            self.answers.append((time.perf_counter() - self.began[0], time.process_time() - self.began[1]))
            self.began = None

    def flush(self) -> None:
        pass


def _pcts(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"p50 {1000 * xs[len(xs) // 2]:5.1f} / p99 {1000 * xs[int(0.99 * (len(xs) - 1))]:6.1f} ms"


def bench_replay(vets: int, per_vet: int) -> None:
    day = replay_day([f"v{i}" for i in range(1, vets + 1)], per_vet)
    lines = _Lines(day)
    asyncio.run(run_replay(lines, lines))  # type: ignore[arg-type]
    first, rest = lines.answers[0], lines.answers[1:]
    events = sum(1 for x in day[3:] if x["type"] != "query")
    print(f"replay: {vets} vets x {per_vet} bookings ({events} events, {len(rest) + 1} queries): "
          f"answer wall {_pcts([w for w, _ in rest])}, CPU {_pcts([c for _, c in rest])}; "
          f"first answer (learning) {1000 * first[0]:.0f} ms")


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
    now = datetime.combine(DAY, dtime(7, 50), TZ)
    for vets, per_vet in ((3, 16), (5, 25), (8, 25)):
        names = [f"v{i}" for i in range(1, vets + 1)]
        vet_model = learn(history(20, names), BOOKED)
        state = day_state(names, per_vet)
        whole, one = [], []
        for k in range(100):
            t0 = time.process_time()
            estimate(state, now + timedelta(seconds=17 * k), vet_model)
            t1 = time.process_time()
            estimate(state, now + timedelta(seconds=17 * k), vet_model, {names[k % vets]})
            whole.append(t1 - t0)
            one.append(time.process_time() - t1)
        print(f"estimate: {vets} vets x {per_vet} visits, CPU: whole clinic (a query) {_pcts(whole)}, "
              f"one vet (an event) {_pcts(one)}")
    print(f"load average {os.getloadavg()[0]:.1f} (2 cores)")
    for vets, per_vet in ((3, 16), (5, 25), (8, 25)):
        bench_replay(vets, per_vet)
    print(f"load average {os.getloadavg()[0]:.1f}")
    state = day_state()

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
