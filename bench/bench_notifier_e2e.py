"""Emergency posted through the API -> every affected client's text accepted by the (fake) provider.

    .venv/bin/python bench/bench_notifier_e2e.py [--clients 40] [--runs 5]

The whole real path: a real SQLite file, the real app on loopback, 40 clients with
consent checked in for Dr. Ruiz; `POST /api/events` declares a 90-minute emergency; the
policy queues the texts in the event's transaction, the worker (woken at commit) sends
them to a fake Twilio on loopback over HTTP. Timed from the POST until the fake has
accepted every text. Aim (issue #5): under 1 s. (bench/bench_notifier.py times the
notifier alone, from the policy's candidates.)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.app import create_app  # noqa: E402
from server.config import Config, ManualClock  # noqa: E402
from server.events import Event, apply_event  # noqa: E402
from server.schedule import import_schedule  # noqa: E402
from server.store import Clinic, SqliteStore  # noqa: E402
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio  # noqa: E402

TZ = ZoneInfo("America/Chicago")
DAY_START = datetime(2026, 3, 2, 8, 0, tzinfo=TZ)


async def seed(db: Path, n: int) -> str:
    store = await SqliteStore.open(str(db))
    async with store.transaction() as conn:
        await conn.set_clinic(Clinic("Bench Clinic", "America/Chicago", "US", "+13125550100"))
        doc = {
            "vets": [{"id": "v1", "name": "Dr. Ana Ruiz"}],
            "appointment_types": [{"id": "vacc", "name": "Vaccination", "booked_min": 10}],
            "clients": [{"id": f"c{i}", "name": f"Client {i}", "mobile": f"312-555-{1000 + i:04d}",
                         "sms_consent": True} for i in range(n)],
            "pets": [{"id": f"p{i}", "client": f"c{i}", "name": f"Pet{i}", "sex": "female"} for i in range(n)],
            "appointments": [{"id": f"a{i}", "vet": "v1", "type": "vacc", "pet": f"p{i}",
                              "scheduled": (DAY_START + timedelta(minutes=3 * i)).isoformat()} for i in range(n)],
        }
        await import_schedule(conn, doc, TZ, "US")
        for i in range(n):  # the lobby is full: everyone has checked in
            await apply_event(conn, Event("checkin", DAY_START, f"a{i}"), "bench", TZ, DAY_START)
        token = await conn.create_token("reception", "bench", DAY_START)
    await store.close()
    return token


async def one_run(n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        token = await seed(db, n)
        async with FakeTwilio() as twilio:
            clock = ManualClock(DAY_START + timedelta(minutes=5), running=True)
            config = Config(db_path=str(db), clock=clock, public_url="http://127.0.0.1:1", sms_provider="twilio",
                            twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                            twilio_from="+13125550100", twilio_base_url=twilio.base_url)
            runner = web.AppRunner(create_app(config))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            try:
                async with aiohttp.ClientSession() as http:
                    t0 = time.perf_counter()
                    resp = await http.post(f"http://127.0.0.1:{port}/api/events",
                                           json={"type": "emergency", "id": "e1", "vet": "v1", "expected_min": 90},
                                           headers={"Authorization": f"Bearer {token}"})
                    assert resp.status == 201, await resp.text()
                    while len(twilio.accepted) < n:
                        if time.perf_counter() - t0 > 30:
                            raise RuntimeError(f"only {len(twilio.accepted)} of {n} texts after 30 s")
                        await asyncio.sleep(0.005)
                    took = time.perf_counter() - t0
                    assert len({m["to"] for m in twilio.accepted}) == n
                    return took
            finally:
                await runner.cleanup()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=40)
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    times = [await one_run(a.clients) for _ in range(a.runs)]
    print(f"emergency posted -> {a.clients} texts accepted by the fake Twilio: median {statistics.median(times):.3f} s,"
          f" max {max(times):.3f} s over {a.runs} runs (aim < 1 s)")


if __name__ == "__main__":
    asyncio.run(main())
