"""Emergency posted -> 40 affected clients' texts accepted by the (fake) provider.

    .venv/bin/python bench/bench_notifier.py [--clients 40] [--runs 5]

Times the real path on a real SQLite file (WAL, synchronous=FULL): the policy and the
outbox rows in one transaction, then the worker (woken at commit) sending to the fake
Twilio on loopback over HTTP, until the fake has accepted every text. Aim: under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notifier import outbox  # noqa: E402
from notifier.messages import ClinicInfo  # noqa: E402
from notifier.policy import PolicySettings, TextCandidate  # noqa: E402
from notifier.providers import TwilioProvider  # noqa: E402
from notifier.worker import Worker, run_worker  # noqa: E402
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, open_outbox_db, sqlite_transaction  # noqa: E402


def candidates(n: int, now: datetime) -> list[TextCandidate]:
    # Clients in a zone where it is now around noon, so texting hours never skip the run.
    tz = timezone(timedelta(hours=12 - now.astimezone(UTC).hour))
    out = []
    for i in range(n):
        sched = now + timedelta(minutes=5 + 3 * i % 60)
        start = sched + timedelta(minutes=45)
        out.append(TextCandidate(
            visit_id=f"a{i}", kind="appointment", pet_name="Bella", pet_sex="female", vet_name="Dr. Ruiz",
            scheduled=sched, arrived=now if i % 2 else None, start=start, p10=start - timedelta(minutes=10),
            p90=start + timedelta(minutes=15), to_number=f"+1555555{i:04d}", consent=True, reason="emergency", tz=tz))
    return out


async def one_run(n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        conn = await open_outbox_db(str(Path(d) / "bench.db"))
        tx = sqlite_transaction(conn)
        async with FakeTwilio() as twilio:
            provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, messaging_service_sid="MG" + "0" * 32,
                                      status_callback_base="https://clinic.example", base_url=twilio.base_url)
            clock = lambda: datetime.now(UTC)  # noqa: E731
            worker = Worker(tx, provider, clock)
            task = asyncio.create_task(run_worker(tx, provider, clock, worker=worker))
            await asyncio.sleep(0.05)  # the worker is up and idle, as in the server
            now = clock()
            t0 = time.perf_counter()
            async with tx() as c:  # the emergency's transaction
                ids = await outbox.queue_texts(c, candidates(n, now), now, PolicySettings(), ClinicInfo("Oakwood"),
                                               link_for=lambda cand: f"https://clinic.example/r/{cand.visit_id}")
            worker.wake()
            while len(twilio.accepted) < n:
                if time.perf_counter() - t0 > 30:
                    raise SystemExit(f"only {len(twilio.accepted)} of {n} texts accepted after 30 s")
                await asyncio.sleep(0.001)
            elapsed = time.perf_counter() - t0
            assert len(ids) == n
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await conn.close()
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=40)
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    times = [asyncio.run(one_run(a.clients)) for _ in range(a.runs)]
    print(f"emergency -> {a.clients} texts accepted by the fake provider: median {statistics.median(times):.3f} s,"
          f" max {max(times):.3f} s over {a.runs} runs (aim < 1 s)")
    return 0 if max(times) < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
