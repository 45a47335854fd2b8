"""Provet Cloud connector against a fake Provet Cloud on loopback (tests/fake_provet.py): the day
from its paged API, changes by its webhooks, arrival written back as an admitted consultation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from server.connectors.http import ConnectorError, Credentials, PoliteClient
from server.connectors.loop import LoopSettings, SyncLoop
from server.connectors.provet import ProvetConnector, ProvetSettings
from server.connectors.webhook import webhook_app
from server.events import Event, apply_event
from server.store import Clinic, Store, open_store
from tests.conftest import eventually
from tests.fake_provet import API_TOKEN, CLIENT_ID, CLIENT_SECRET, PROVET_ID, FakeProvet, send_webhook
from tests.test_connector_ezyvet import FastSleep

TZ = ZoneInfo("Europe/Helsinki")
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=TZ)
TODAY = NOW.date()
SECRET = "webhook-secret-0123456789"


@dataclass
class Rig:
    fake: FakeProvet
    store: Store
    loop: SyncLoop
    connector: ProvetConnector
    sleep: FastSleep

    async def status(self, pms_id: str) -> str | None:
        async with self.store.read() as q:
            found = await q.visit(f"provet:{pms_id}")
        return found.status if found else None


def make_connector(fake: FakeProvet, sleep: FastSleep, *, oauth: bool = False) -> ProvetConnector:
    settings = ProvetSettings.from_dict({"base_url": fake.base_url}, api_token=None if oauth else API_TOKEN,
                                        secret=CLIENT_SECRET)
    creds = Credentials(f"{fake.host}/{PROVET_ID}/oauth2/token/", CLIENT_ID, CLIENT_SECRET, json_body=False,
                        api_token=None if oauth else API_TOKEN)
    client = PoliteClient(fake.base_url, creds, sleep=sleep, monotonic=sleep.monotonic, name="Provet Cloud",
                          timeout_s=1.0, backoff_s=0.5)
    return ProvetConnector(settings, client)


@pytest.fixture
async def rig(clinic_db: str) -> AsyncIterator[Rig]:
    async with FakeProvet(page_size=2) as fake:
        fake.add_user(7, "Aino", "Virtanen")
        fake.add_user(8, "Mikko", "Laine")
        fake.add_client(9, "Liisa", "Korhonen", "+358 40 1234567")
        fake.add_patient(55, "Musti", 9)
        fake.add_client(10, "Juha", "Nieminen", "040 7654321")
        fake.add_patient(56, "Mirri", 10, "Male")
        fake.reasons[3] = {"id": 3, "url": fake.url("reason", 3), "name": "Vaccination"}
        for aid, hour, user, client, patient in ((301, 9, 7, 9, 55), (302, 9, 8, 10, 56), (303, 10, 7, 10, 56)):
            start = NOW.replace(hour=hour)
            fake.add_appointment(aid, start, start + timedelta(minutes=20), user=user, client=client, patient=patient,
                                 reason=3)
        fake.add_appointment(399, NOW + timedelta(days=8), NOW + timedelta(days=8, minutes=20), client=9, patient=55)
        store = await open_store(clinic_db)
        async with store.transaction() as tx:
            await tx.set_clinic(Clinic("Eläinklinikka", "Europe/Helsinki", "FI"))
        sleep = FastSleep()
        connector = make_connector(fake, sleep)
        loop = SyncLoop(store, connector, LoopSettings(days=2), clock=lambda: NOW)
        try:
            yield Rig(fake, store, loop, connector, sleep)
        finally:
            await connector.close()
            await store.close()


async def test_first_sync_reads_every_page_with_names_and_mobiles(rig: Rig) -> None:
    result = await rig.loop.round()
    assert (result.imported, result.cancelled) == (3, 0)
    async with rig.store.read() as q:
        bookings = await q.kiosk_bookings("+358401234567", TODAY)
        assert [(b.pet, b.vet_name, b.sex) for b in bookings] == [("Musti", "Dr. Aino Virtanen", "female")]
        assert await q.visit("provet:399") is None  # eight days ahead
        found = await q.booking_detail("provet:301")
    assert found is not None and (found.type_name, found.booked_min) == ("Vaccination", 20)
    pages = [r for r in rig.fake.requests if r[1].endswith("/appointment/")]
    assert len(pages) == 2  # page_size 2: three of today's appointments on two pages


async def test_webhooks_bring_a_move_and_a_deletion_within_a_round(rig: Rig) -> None:
    await rig.loop.round()
    app = webhook_app(rig.loop, SECRET)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/pms/provet/webhook/{SECRET}"
    try:
        moved = NOW.replace(hour=14)
        rig.fake.appointments[301].update(start=moved.isoformat(), end=(moved + timedelta(minutes=30)).isoformat())
        del rig.fake.appointments[302]
        assert await send_webhook(url, {"appointment_id": "301"}) == 200
        assert await send_webhook(url, {"appointment_id": "302"}) == 200
        assert await send_webhook(url, {"consultation_id": "77"}) == 200  # acknowledged, nothing named
        assert await send_webhook(url.replace(SECRET, "wrong-secret-0000000000"), {"appointment_id": "303"}) == 404
        assert rig.loop.wake.is_set() and rig.loop.pending_ids == {"301", "302"}
        before = len(rig.fake.requests)
        result = await rig.loop.sync_named()
    finally:
        await runner.cleanup()
    assert (result.imported, result.cancelled) == (1, 1)
    assert len(rig.fake.requests) - before <= 4  # two fetches by id (names are remembered)
    async with rig.store.read() as q:
        found = await q.visit("provet:301")
    assert found is not None and found.visit.scheduled == NOW.replace(hour=14) and found.visit.booked_min == 30
    assert await rig.status("302") == "cancelled"


async def test_kiosk_arrival_admits_the_appointment_once(rig: Rig) -> None:
    await rig.loop.round()
    async with rig.store.transaction() as tx:
        await apply_event(tx, Event("checkin", NOW, "provet:301"), "kiosk:lobby", TZ, NOW)
    await rig.loop.round()
    await rig.loop.round()
    assert len(rig.fake.consultations) == 1
    consultation = rig.fake.consultations[0]
    assert consultation["client"] == rig.fake.url("client", 9)
    assert consultation["patients"] == [rig.fake.url("patient", 55)]
    assert consultation["supervising_veterinarian"] == rig.fake.url("user", 7)
    assert rig.fake.appointments[301]["consultation"] == consultation["url"]
    async with rig.store.read() as q:
        assert [w.action for w in await q.pms_writes(("sent",), 10)] == ["arrived"]


async def test_oauth_token_by_basic_auth_and_renewed_after_expiry(rig: Rig) -> None:
    rig.loop.connector = connector = make_connector(rig.fake, rig.sleep, oauth=True)
    try:
        await rig.loop.round()
        rig.fake.expire_tokens()
        await rig.loop.sync_full()
    finally:
        await connector.close()
    assert rig.fake.tokens_issued == 2


async def test_429_waits_for_provets_retry_after(rig: Rig) -> None:
    rig.fake.fail_next(1, "429")
    result = await rig.loop.round()
    assert result.imported == 3 and 1.0 in rig.sleep.waits


async def test_a_next_page_on_another_host_is_not_followed_with_our_token(rig: Rig) -> None:
    rig.fake.foreign_next = True
    with pytest.raises(ConnectorError, match="another host"):
        await rig.loop.round()
    assert all("evil" not in r[1] for r in rig.fake.requests)


async def test_a_next_link_back_to_an_earlier_page_is_a_loop(rig: Rig) -> None:
    rig.fake.loop_pages = True
    with pytest.raises(ConnectorError, match="paging loops"):
        await rig.loop.round()


async def test_a_gateway_storm_is_a_clear_error_and_the_next_round_recovers(rig: Rig) -> None:
    await rig.loop.round()
    rig.fake.fail_next(5, "500")
    with pytest.raises(ConnectorError, match="answered 502 5 times"):
        await rig.loop.sync_full()
    async with rig.store.read() as q:
        assert await q.count_visits(TODAY) == 3
    result = await rig.loop.sync_full()
    assert result.cancelled == 0


async def test_a_page_of_hundreds_is_read_whole(rig: Rig) -> None:
    # A 1,000-result page is a few hundred kilobytes: it arrives in many reads, all of them kept.
    rig.fake.page_size = 1000
    for i in range(600):
        start = NOW.replace(hour=11) + timedelta(seconds=i)
        rig.fake.add_appointment(1000 + i, start, start + timedelta(minutes=15), client=9, patient=55)
    result = await rig.loop.round()
    assert result.imported == 603


async def test_the_loop_runs_a_round_when_a_webhook_nudges_it_and_stops_when_told(rig: Rig) -> None:
    rig.loop.settings.interval_s = 3600  # only a nudge can start the second round
    stop = asyncio.Event()
    task = asyncio.create_task(rig.loop.run(stop))
    try:
        await eventually(lambda: rig.loop._last_full_mono is not None, "the first round")
        del rig.fake.appointments[303]
        rig.loop.nudge("303")
        await eventually(_status_is(rig, "303", "cancelled"), "the nudged round")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert task.done() and task.exception() is None


def _status_is(rig: Rig, pms_id: str, status: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await rig.status(pms_id) == status
    return check


async def test_a_webhook_whose_fetch_failed_is_fetched_again_next_round(rig: Rig) -> None:
    await rig.loop.round()
    del rig.fake.appointments[302]
    rig.loop.nudge("302")
    rig.fake.fail_next(5, "500", path=f"/{PROVET_ID}/api/0.1/appointment/302/")
    with pytest.raises(ConnectorError, match="502"):
        await rig.loop.round()
    assert rig.loop.pending_ids == {"302"} and await rig.status("302") == "booked"
    await rig.loop.round()
    assert rig.loop.pending_ids == set() and await rig.status("302") == "cancelled"


async def test_an_admission_in_provet_checks_the_client_in_here(rig: Rig) -> None:
    await rig.loop.round()
    rig.fake.appointments[302]["consultation"] = rig.fake.base_url + "/consultation/5/"  # admitted at the desk
    rig.loop.nudge("302")
    result = await rig.loop.round()
    assert result.arrived == 1 and await rig.status("302") == "waiting"
    await rig.loop.round()
    assert rig.fake.consultations == []  # not admitted a second time by us
