"""A day's sync for a five-vet clinic (issue 19): requests made and seconds taken, against the fake
ezyVet and Provet Cloud of tests/ on loopback (the documented protocols; a real API adds its
network latency per request, so the request counts are the figures that carry over).

    .venv/bin/python bench/bench_sync.py [--vets 5] [--per-day 32] [--days 2]

For each system: the first full read of the window (today and the next `--days` days: every
appointment, the names and mobiles looked up in batches), a change round with nothing changed,
a change round after 10 changes (moves, cancels, new bookings; ezyVet's modified_at feed;
Provet's webhooks name the 10), and 20 arrivals written back. The loop's rate pacing (55
requests a minute per endpoint) is on, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TZ = ZoneInfo("America/Chicago")


async def _store(tmp: str, name: str):  # type: ignore[no-untyped-def]
    from server.store import Clinic, SqliteStore

    store = await SqliteStore.open(str(Path(tmp) / f"{name}.db"))
    async with store.transaction() as tx:
        await tx.set_clinic(Clinic("Bench Vets", "America/Chicago", "US", settings={"max_visits_per_day": 2000}))
    return store


def _slots(now: datetime, vets: int, per_day: int, days: int) -> list[tuple[int, int, datetime]]:
    """(vet index, n, start) of every appointment of the window: per_day per vet per day, 15 min apart from 8:00."""
    out = []
    for d in range(days + 1):
        day0 = (now + timedelta(days=d)).replace(hour=8, minute=0, second=0, microsecond=0)
        for v in range(vets):
            for i in range(per_day):
                out.append((v, i, day0 + timedelta(minutes=15 * i)))
    return out


async def _checkins(store, loop, prefix: str, ids: list[str], now: datetime) -> None:  # type: ignore[no-untyped-def]
    from server.events import Event, apply_event

    async with store.transaction() as tx:
        for pms_id in ids:
            found = await tx.visit(f"{prefix}{pms_id}")
            if found is not None and found.status == "booked":
                await apply_event(tx, Event("checkin", now, f"{prefix}{pms_id}"), "kiosk:bench", TZ, now)


async def bench_ezyvet(args: argparse.Namespace, tmp: str) -> None:
    from server.connectors.ezyvet import EzyVetConnector, EzyVetSettings
    from server.connectors.loop import LoopSettings, SyncLoop
    from tests.fake_ezyvet import CLIENT_ID, CLIENT_SECRET, PARTNER_ID, FakeEzyVet

    now = datetime.now(TZ).replace(hour=7, minute=0, second=0, microsecond=0)
    async with FakeEzyVet(per_minute=60) as fake:
        fake.resources = {str(700 + v): f"Dr Vet {v}" for v in range(args.vets)}
        slots = _slots(now, args.vets, args.per_day, args.days)
        for n, (v, _, start) in enumerate(slots):
            client = str(5000 + n % 400)  # 400 households, some with several visits
            if client not in fake.contacts:
                fake.add_client(client, "Client", client, f"+1312555{int(client) % 10000:04d}")
                fake.add_pet(str(int(client) + 10_000), f"Pet{client}", client)
            fake.add_appointment(str(100_000 + n), start, minutes=15, vet=str(700 + v),
                                 animal=str(int(client) + 10_000), contact=client)
        store = await _store(tmp, "ezyvet")
        settings = EzyVetSettings.from_dict({"base_url": fake.base_url, "partner_id": PARTNER_ID,
                                             "client_id": CLIENT_ID}, CLIENT_SECRET)
        connector = EzyVetConnector(settings)
        loop = SyncLoop(store, connector, LoopSettings(days=args.days), clock=lambda: now)
        try:
            await _round("ezyVet", "first full read", loop, connector, len(slots))
            await _round("ezyVet", "change round, nothing changed", loop, connector)
            ids = sorted(fake.appointments)[:10]
            for k, aid in enumerate(ids):
                if k % 3 == 0:
                    fake.change(aid, start_at=fake.appointments[aid]["start_at"] + 600)
                elif k % 3 == 1:
                    fake.change(aid, status_id="4")
                else:
                    fake.add_appointment(str(900_000 + k), now.replace(hour=16), vet="700", animal="15000",
                                         contact="5000")
            await _round("ezyVet", "change round, 10 changes", loop, connector)
            first = sorted(fake.appointments)[20:40]
            await _checkins(store, loop, "ezyvet:", first, now + timedelta(hours=1))
            await _round("ezyVet", "20 arrivals written back", loop, connector)
            print(f"  ezyVet status writes received: {len(fake.writes)}")
        finally:
            await connector.close()
            await store.close()


async def bench_provet(args: argparse.Namespace, tmp: str) -> None:
    from server.connectors.http import Credentials, PoliteClient
    from server.connectors.loop import LoopSettings, SyncLoop
    from server.connectors.provet import ProvetConnector, ProvetSettings
    from tests.fake_provet import API_TOKEN, FakeProvet

    now = datetime.now(TZ).replace(hour=7, minute=0, second=0, microsecond=0)
    async with FakeProvet() as fake:
        for v in range(args.vets):
            fake.add_user(700 + v, "Vet", str(v))
        slots = _slots(now, args.vets, args.per_day, args.days)
        for n, (v, _, start) in enumerate(slots):
            client = 5000 + n % 400
            if client not in fake.clients:
                fake.add_client(client, "Client", str(client), f"+1312555{client % 10000:04d}")
                fake.add_patient(client + 10_000, f"Pet{client}", client)
            fake.add_appointment(100_000 + n, start, start + timedelta(minutes=15), user=700 + v, client=client,
                                 patient=client + 10_000)
        store = await _store(tmp, "provet")
        settings = ProvetSettings.from_dict({"base_url": fake.base_url}, api_token=API_TOKEN)
        connector = ProvetConnector(settings, PoliteClient(fake.base_url, Credentials(api_token=API_TOKEN),
                                                           per_minute=55, name="Provet Cloud"))
        loop = SyncLoop(store, connector, LoopSettings(days=args.days), clock=lambda: now)
        try:
            await _round("Provet Cloud", "first full read", loop, connector, len(slots))
            ids = sorted(fake.appointments)[:10]
            for aid in ids:
                a = fake.appointments[aid]
                a["start"] = (datetime.fromisoformat(a["start"]) + timedelta(minutes=10)).isoformat()
                a["end"] = (datetime.fromisoformat(a["end"]) + timedelta(minutes=10)).isoformat()
                loop.nudge(str(aid))  # what the webhook receiver does for each POST
            await _round("Provet Cloud", "webhook round, 10 changes", loop, connector)
            first = [str(a) for a in sorted(fake.appointments)[20:40]]
            await _checkins(store, loop, "provet:", first, now + timedelta(hours=1))
            await _round("Provet Cloud", "20 arrivals admitted", loop, connector)
            print(f"  Provet consultations created: {len(fake.consultations)}")
        finally:
            await connector.close()
            await store.close()


async def _round(system: str, what: str, loop, connector, total: int | None = None) -> None:  # type: ignore[no-untyped-def]
    before = connector.request_count()
    began = time.perf_counter()
    result = await loop.round()
    took = time.perf_counter() - began
    extra = f" ({total} appointments in the window)" if total else ""
    print(f"  {system}: {what}{extra}: {connector.request_count() - before} requests, {took:.2f} s; "
          f"{result.summary()}")


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vets", type=int, default=5)
    p.add_argument("--per-day", type=int, default=32, help="appointments per vet per day")
    p.add_argument("--days", type=int, default=2, help="days ahead besides today")
    args = p.parse_args()
    print(f"{args.vets} vets, {args.per_day} appointments each a day, today and {args.days} days ahead")
    with tempfile.TemporaryDirectory() as tmp:
        await bench_ezyvet(args, tmp)
        await bench_provet(args, tmp)


if __name__ == "__main__":
    asyncio.run(main())
