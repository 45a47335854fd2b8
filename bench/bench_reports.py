"""Reports speed (issue 17 item 4): a year of a five-vet clinic (about 40,000 visits, the demo's
simulation of speeds, lateness, no-shows and emergencies, with a walk-in now and then), written
to a real SQLite file; then the month and year reports timed from the store's reads to the
rendered page (tables and the four SVG charts), cold (no cache) each time.

    .venv/bin/python bench/bench_reports.py [--runs 3]

Targets: month under 1 s, year under 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

from server.demo import TYPES
from server.domain import Visit
from server.report_plots import PLOTS, plot
from server.reports import build_report, load_report_data, make_period
from server.store import Clinic, open_store

TZ = ZoneInfo("America/Chicago")
VETS = {f"v{i}": s for i, s in enumerate((1.0, 1.3, 0.85, 1.1, 0.95), start=1)}
YEAR = 2025


def year_of_visits(seed: int = 5) -> list[Visit]:
    rng = random.Random(seed)
    out: list[Visit] = []
    d = date(YEAR, 1, 1)
    while d.year == YEAR:
        if d.weekday() < 5:
            for vet, speed in VETS.items():
                t = datetime.combine(d, dtime(8, 0), TZ)
                free, i = t, 0
                while t < datetime.combine(d, dtime(18, 0), TZ):
                    type_id, _, booked = rng.choice(TYPES)
                    vid, scheduled = f"{d}/{vet}/{i}", t
                    i += 1
                    t += timedelta(minutes=booked)
                    if rng.random() < 0.06:
                        out.append(Visit(vid, "appointment", vet, type_id, booked, scheduled=scheduled, noshow=True))
                        continue
                    arrived = scheduled + timedelta(minutes=rng.gauss(-4, 6))
                    start = max(free, arrived, scheduled - timedelta(minutes=5))
                    end = start + timedelta(minutes=booked * speed * rng.lognormvariate(0, 0.3))
                    free = end + timedelta(minutes=1)
                    out.append(Visit(vid, "appointment", vet, type_id, booked, scheduled=scheduled, arrived=arrived,
                                     started=start, ended=end))
                    if rng.random() < 0.02:
                        kind = rng.choice(["emergency", "walkin"])
                        length = rng.uniform(30, 70) if kind == "emergency" else rng.uniform(10, 25)
                        out.append(Visit(f"{vid}/{kind[0]}", kind, vet, None, 45 if kind == "emergency" else 20,
                                         arrived=free, started=free, ended=free + timedelta(minutes=length)))
                        free += timedelta(minutes=length)
        d += timedelta(days=1)
    return out


async def main(runs: int) -> None:
    folder = tempfile.mkdtemp(prefix="bench-reports-")
    db = os.path.join(folder, "year.db")
    store = await open_store(db)
    t0 = time.perf_counter()
    visits = year_of_visits()
    async with store.transaction() as tx:
        await tx.set_clinic(Clinic("Bench clinic", "America/Chicago"))
        for vet in VETS:
            await tx.save_vet(vet, f"Dr. {vet.upper()}")
        for type_id, name, booked in TYPES:
            await tx.save_appointment_type(type_id, name, booked)
        await tx.add_history(visits, TZ)
    print(f"seeded {len(visits):,} visits of {len(VETS)} vets in {YEAR} in {time.perf_counter() - t0:.1f} s")
    plot(build_report(await _data(store, make_period("day", date(YEAR, 3, 3))), make_period("day", date(YEAR, 3, 3))),
         "waits")  # matplotlib's one-off import and font set-up, as a running server has done already
    periods = (("month", make_period("month", date(YEAR, 3, 1))), ("year", make_period("year", date(YEAR, 1, 1))))
    for label, period in periods:
        times, parts = [], []
        for _ in range(runs):
            a = time.perf_counter()
            data = await _data(store, period)
            b = time.perf_counter()
            rep = build_report(data, period)
            c = time.perf_counter()
            for name in PLOTS:
                plot(rep, name)
            d = time.perf_counter()
            times.append(d - a)
            parts.append((b - a, c - b, d - c))
        best = min(range(runs), key=lambda k: times[k])
        read, compute, draw = parts[best]
        print(f"{label:5s} ({len(data.visits):,} visits): median {statistics.median(times):.2f} s, best "
              f"{times[best]:.2f} s (read {read:.2f} + numbers {compute:.2f} + 4 charts {draw:.2f})")
    await store.close()
    shutil.rmtree(folder)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


async def _data(store, period):  # type: ignore[no-untyped-def]
    async with store.read() as q:
        return await load_report_data(q, period, None, TZ)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    asyncio.run(main(p.parse_args().runs))
