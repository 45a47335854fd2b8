"""`waitroom db copy` on a year of a five-vet clinic (issue 13 item 4): the year of
bench_reports.py (about 40,000 visits) in a SQLite file, copied into PostgreSQL and checked (row
counts, the event log, every day's state through both stores), timed end to end as the command.

    .venv/bin/python bench/bench_db_copy.py

PostgreSQL: WAITROOM_TEST_DATABASE=postgresql://... or a throwaway cluster it starts and stops
(Debian's postgresql, as the tests do).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from bench_reports import TZ, VETS, YEAR, year_of_visits  # noqa: E402

from server.demo import TYPES  # noqa: E402
from server.store import Clinic, open_store  # noqa: E402
from tests import pg_cluster  # noqa: E402


async def seed(db: str) -> int:
    store = await open_store(db)
    visits = year_of_visits()
    async with store.transaction() as tx:
        await tx.set_clinic(Clinic("Bench clinic", "America/Chicago"))
        for vet in VETS:
            await tx.save_vet(vet, f"Dr. {vet.upper()}")
        for type_id, name, booked in TYPES:
            await tx.save_appointment_type(type_id, name, booked)
        await tx.add_history(visits, TZ)
    await store.close()
    return len(visits)


def main() -> None:
    folder = tempfile.mkdtemp(prefix="bench-db-copy-")
    cluster = None
    url = os.environ.get("WAITROOM_TEST_DATABASE")
    if not url:
        cluster = pg_cluster.start_cluster()
        url = cluster.url
    try:
        db = os.path.join(folder, "year.db")
        n = asyncio.run(seed(db))
        print(f"seeded {n:,} visits of {len(VETS)} vets in {YEAR} ({os.path.getsize(db) / 1e6:.1f} MB)")
        exe = str(Path(sys.executable).parent / "waitroom")
        target = pg_cluster.with_params(url, clinic=f"bench-{int(time.time())}")
        t0 = time.perf_counter()
        out = subprocess.run([exe, "db", "copy", "--from", db, "--to", target], capture_output=True, text=True)
        took = time.perf_counter() - t0
        print(out.stdout.strip().splitlines()[-1] if out.returncode == 0 else out.stderr)
        print(f"waitroom db copy, end to end: {took:.1f} s ({n / took:,.0f} visits/s)")
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        shutil.rmtree(folder)
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
