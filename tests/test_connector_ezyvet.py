"""ezyVet connector against a fake ezyVet on loopback (tests/fake_ezyvet.py): the day follows the
practice system, arrivals are written back, and a broken API gives clear errors without losing
or doubling a booking."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from server.connectors.core import SyncRefused
from server.connectors.ezyvet import EzyVetConnector, EzyVetSettings
from server.connectors.http import AuthError, ConnectorError, Credentials, PoliteClient
from server.connectors.loop import LoopSettings, SyncLoop
from server.events import Event, apply_event
from server.store import Clinic, Store, open_store
from tests.fake_ezyvet import CLIENT_ID, CLIENT_SECRET, PARTNER_ID, FakeEzyVet

TZ = ZoneInfo("America/Chicago")
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=TZ)
TODAY = NOW.date()


@dataclass
class FastSleep:
    """Records the waits asked for and lets the loop move on at once (a test cannot wait a minute)."""

    waits: list[float] = field(default_factory=list)
    now: float = 0.0

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@dataclass
class Rig:
    fake: FakeEzyVet
    store: Store
    loop: SyncLoop
    connector: EzyVetConnector
    sleep: FastSleep

    async def status(self, pms_id: str) -> str | None:
        async with self.store.read() as q:
            found = await q.visit(f"ezyvet:{pms_id}")
        return found.status if found else None

    async def checkin(self, pms_id: str, event: str = "checkin") -> None:
        async with self.store.transaction() as tx:
            await apply_event(tx, Event(event, NOW + timedelta(minutes=5), f"ezyvet:{pms_id}"), "kiosk:lobby",
                              TZ, NOW + timedelta(minutes=5))


def make_connector(fake: FakeEzyVet, sleep: FastSleep, *, secret: str = CLIENT_SECRET,
                   per_minute: int = 55) -> EzyVetConnector:
    settings = EzyVetSettings.from_dict({"base_url": fake.base_url, "partner_id": PARTNER_ID,
                                         "client_id": CLIENT_ID}, secret)
    client = PoliteClient(fake.base_url, Credentials(f"{fake.base_url}/v1/oauth/access_token", CLIENT_ID, secret,
                                                     {"partner_id": PARTNER_ID, "scope": settings.scope}),
                          per_minute=per_minute, sleep=sleep, monotonic=sleep.monotonic, name="ezyVet",
                          timeout_s=1.0, backoff_s=0.5)
    return EzyVetConnector(settings, client)


@pytest.fixture
async def rig(clinic_db: str) -> AsyncIterator[Rig]:
    async with FakeEzyVet() as fake:
        fake.add_client("9", "Maria", "Lopez", "+1 312 555 0101")
        fake.add_pet("55", "Bella", "9")
        fake.add_client("10", "Tom", "Baker", "(312) 555-0102")
        fake.add_pet("56", "Rex", "10")
        fake.add_appointment("101", NOW.replace(hour=9), vet="7", animal="55", contact="9")
        fake.add_appointment("102", NOW.replace(hour=9, minute=30), vet="8", type_id="31", animal="56", contact="10",
                             minutes=30)
        fake.add_appointment("103", NOW.replace(hour=10), vet="7", animal="56", contact="10")
        fake.add_appointment("199", NOW + timedelta(days=9), vet="7", animal="55", contact="9")  # beyond the window
        store = await open_store(clinic_db)
        async with store.transaction() as tx:
            await tx.set_clinic(Clinic("Test Vets", "America/Chicago", "US"))
        sleep = FastSleep()
        connector = make_connector(fake, sleep)
        loop = SyncLoop(store, connector, LoopSettings(days=2), clock=lambda: NOW)
        try:
            yield Rig(fake, store, loop, connector, sleep)
        finally:
            await connector.close()
            await store.close()


async def test_first_sync_brings_the_days_bookings_with_pets_vets_and_mobiles(rig: Rig) -> None:
    result = await rig.loop.round()
    assert (result.imported, result.cancelled) == (3, 0)
    async with rig.store.read() as q:
        bookings = await q.kiosk_bookings("+13125550101", TODAY)  # what the kiosk finds by phone
        assert [(b.pet, b.vet_name) for b in bookings] == [("Bella", "Dr Ana Ruiz")]
        assert await q.visit("ezyvet:199") is None  # nine days ahead: not today's business
        state = await q.pms_state("ezyvet")
    assert state.last_ok_at == NOW and state.last_error is None
    # The change cursor is ezyVet's own clock (the newest modified_at it showed us), not ours.
    assert state.cursor == str(rig.fake.appointments["103"]["modified_at"])
    assert state.progress["imported"] == 3 and state.progress["requests"] >= 7


async def test_changes_move_cancel_and_delete_without_doubling(rig: Rig) -> None:
    await rig.loop.round()
    cursor = int(rig.fake.appointments["103"]["modified_at"])
    rig.fake.change("101", start_at=int(NOW.replace(hour=11).timestamp()))  # moved
    rig.fake.change("102", status_id="4")  # cancelled
    rig.fake.change("103", active=False)  # deleted
    rig.fake.add_appointment("104", NOW.replace(hour=12), vet="8", animal="55", contact="9")  # new
    result = await rig.loop.round()
    assert (result.imported, result.cancelled) == (2, 2)
    async with rig.store.read() as q:
        moved = await q.visit("ezyvet:101")
        assert moved is not None and moved.visit.scheduled == NOW.replace(hour=11)
        assert await q.count_visits(TODAY) == 2  # 101 and 104; nothing doubled
    assert [await rig.status(i) for i in ("102", "103", "104")] == ["cancelled", "cancelled", "booked"]
    # The change feed was asked from ezyVet's clock, less a minute of overlap.
    _, _, query = rig.fake.api_requests("/v2/appointment")[-1]
    assert '"gt"' in query["modified_at"] and str(cursor - 60) in query["modified_at"]
    again = await rig.loop.round()  # nothing new: the same rows, nothing cancelled twice
    assert again.cancelled == 0
    async with rig.store.read() as q:
        assert await q.count_visits(TODAY) == 2


async def test_a_booking_that_already_arrived_is_never_rewritten(rig: Rig) -> None:
    await rig.loop.round()
    await rig.checkin("101")
    rig.fake.change("101", status_id="4", start_at=int(NOW.replace(hour=15).timestamp()))
    result = await rig.loop.round()
    assert await rig.status("101") == "waiting"
    async with rig.store.read() as q:
        found = await q.visit("ezyvet:101")
    assert found is not None and found.visit.scheduled == NOW.replace(hour=9)
    assert any("already" in k or "arrived" in k for k in result.kept)


async def test_a_deleted_booking_missing_from_the_full_read_is_cancelled(rig: Rig) -> None:
    await rig.loop.round()
    del rig.fake.appointments["103"]  # gone from ezyVet altogether
    result = await rig.loop.sync_full()
    assert result.cancelled == 1 and await rig.status("103") == "cancelled"


async def test_kiosk_checkin_and_consult_start_are_written_back_once(rig: Rig) -> None:
    await rig.loop.round()
    await rig.checkin("101")
    await rig.loop.round()
    assert rig.fake.writes == [("101", {"status_id": "2"})]  # In Waiting Room
    await rig.checkin("101", "start")
    await rig.loop.round()
    await rig.loop.round()
    assert rig.fake.writes == [("101", {"status_id": "2"}), ("101", {"status_id": "3"})]  # In Consultation
    assert rig.fake.appointments["101"]["status_id"] == "3"


async def test_write_back_failures_are_retried_then_shown(rig: Rig) -> None:
    await rig.loop.round()
    await rig.checkin("102")
    # Every try of the write-back answers 500: the round still succeeds (reading is fine) and
    # the row waits for its next try, with the reason.
    rig.fake.fail_next(5, "500", path="/v2/appointment/102")
    await rig.loop.round()
    async with rig.store.read() as q:
        rows = await q.pms_writes(("queued",), 10)
    assert [(r.visit_id, r.attempts) for r in rows] == [("ezyvet:102", 1)]
    assert "500" in (rows[0].last_error or "")
    assert rig.fake.writes == []
    # Its next try is not due yet (10 s backoff): a round right away does not send it again.
    await rig.loop.round()
    assert rig.fake.writes == []
    # Later, the API answers again: the write goes through once.
    rig.loop.clock = lambda: NOW + timedelta(minutes=1)
    await rig.loop.round()
    assert rig.fake.writes == [("102", {"status_id": "2"})]
    async with rig.store.read() as q:
        assert [r.visit_id for r in await q.pms_writes(("sent",), 10)] == ["ezyvet:102"]


async def test_a_client_cancel_or_reschedule_by_link_becomes_reception_task(rig: Rig) -> None:
    await rig.loop.round()
    async with rig.store.transaction() as tx:
        await apply_event(tx, Event("cancel_visit", NOW, "ezyvet:102"), "client:link", TZ, NOW)
        await apply_event(tx, Event("reschedule", NOW, "ezyvet:103",
                                    {"vet": "ezyvet:vet-7", "scheduled": NOW.replace(hour=16).isoformat()}),
                          "client:link", TZ, NOW)
    await rig.loop.round()
    async with rig.store.read() as q:
        tasks = await q.pms_writes(("task",), 10)
    texts = sorted(t.last_error or "" for t in tasks)
    assert len(texts) == 2 and texts[0].startswith("Cancel appointment 102") and texts[1].startswith(
        "Move appointment 103")
    assert rig.fake.writes == []
    # The rescheduled copy made here is ours: the next full read does not cancel it.
    await rig.loop.sync_full()
    assert await rig.status("103-r1") == "booked"


async def test_expired_token_is_renewed_once_and_the_sync_goes_on(rig: Rig) -> None:
    await rig.loop.round()
    assert len(rig.fake.token_bodies) == 1
    rig.fake.expire_tokens()
    await rig.loop.round()
    assert len(rig.fake.token_bodies) == 2
    assert rig.fake.token_bodies[-1]["grant_type"] == "client_credentials"


async def test_wrong_credentials_are_a_clear_error_and_the_secret_is_never_logged(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rig.loop.connector = make_connector(rig.fake, rig.sleep, secret="wrong-secret-value-xyz")
    with pytest.raises(AuthError, match="refused the client credentials"):
        await rig.loop.round()
    async with rig.store.read() as q:
        state = await q.pms_state("ezyvet")
    assert state.last_error is not None and "client id, secret" in state.last_error
    assert "wrong-secret-value-xyz" not in caplog.text and "wrong-secret-value-xyz" not in state.last_error
    assert "wrong-secret-value-xyz" not in repr(rig.loop.connector.client.credentials)
    await rig.loop.connector.client.close()


async def test_429_waits_for_retry_after_then_succeeds(rig: Rig) -> None:
    rig.fake.fail_next(2, "429")
    result = await rig.loop.round()
    assert result.imported == 3
    assert rig.connector.client.stats.throttled == 2
    assert rig.sleep.waits[:2] == [0.0, 0.0]  # Retry-After: 0, as the server asked


async def test_a_5xx_storm_is_a_clear_error_and_keeps_the_day(rig: Rig) -> None:
    await rig.loop.round()
    rig.fake.fail_next(50, "500")
    with pytest.raises(ConnectorError, match="answered 500 5 times in a row"):
        await rig.loop.round()
    async with rig.store.read() as q:
        assert await q.count_visits(TODAY) == 3
        state = await q.pms_state("ezyvet")
    assert state.last_ok_at == NOW and "500" in (state.last_error or "")
    assert rig.sleep.waits[-4:] == [0.5, 1.0, 2.0, 4.0]  # exponential backoff between tries
    rig.fake.faults.clear()
    await rig.loop.round()  # the storm passed: the next round catches up
    async with rig.store.read() as q:
        assert (await q.pms_state("ezyvet")).last_error is None


async def test_malformed_json_is_an_error_not_a_crash(rig: Rig) -> None:
    rig.fake.fail_next(1, "badjson")
    with pytest.raises(ConnectorError, match="not JSON"):
        await rig.loop.round()
    async with rig.store.read() as q:
        assert await q.count_visits(TODAY) == 0


async def test_a_server_that_pages_for_ever_is_stopped(rig: Rig) -> None:
    for i in range(300):
        rig.fake.add_appointment(str(1000 + i), NOW.replace(hour=13), vet="7")
    rig.fake.loop_pages = True
    with pytest.raises(ConnectorError, match="paging loops"):
        await rig.loop.round()
    async with rig.store.read() as q:
        assert await q.count_visits(TODAY) == 0


async def test_ten_thousand_appointments_are_refused_whole(rig: Rig) -> None:
    for i in range(10_000):
        rig.fake.add_appointment(str(20_000 + i), NOW.replace(hour=8) + timedelta(seconds=i), vet="7")
    with pytest.raises(SyncRefused, match="at most 2000 a day.*nothing of this sync was kept"):
        await rig.loop.round()
    async with rig.store.read() as q:
        assert await q.count_visits(TODAY) == 0


async def test_requests_are_paced_under_the_rate_limit(rig: Rig) -> None:
    connector = make_connector(rig.fake, rig.sleep, per_minute=2)
    try:
        for _ in range(5):
            await connector.client.request("GET", "/v2/resource", endpoint="/v2/resource")
    finally:
        await connector.close()
    minute_waits = [w for w in rig.sleep.waits if w > 50]
    assert len(minute_waits) == 2  # requests 3 and 5 waited for the window to roll on
    assert rig.fake.faults == [] and all(r[1] != 429 for r in rig.fake.requests)


def test_expires_in_read_as_seconds_or_epoch_and_capped_at_12_hours() -> None:
    lifetime = PoliteClient._lifetime
    assert lifetime(3600) == pytest.approx(3240)
    assert lifetime(1209600) == pytest.approx(12 * 3600 * 0.9)  # the docs' example: capped
    soon = datetime.now(UTC).timestamp() + 7200  # "epoch format": two hours from now
    assert lifetime(soon) == pytest.approx(6480, abs=5)
    assert lifetime("junk") > 0 and lifetime(None) > 0


async def test_an_unreadable_booking_is_named_and_left_as_it_was(rig: Rig) -> None:
    await rig.loop.round()
    rig.fake.change("102", duration="half an hour")  # a bad value in ezyVet: not a deletion
    rig.loop._last_full_mono = None  # the next round is a full read of the window
    result = await rig.loop.round()
    assert result.skipped == ["appointment 102: duration 'half an hour' is not a number: left as it was"]
    assert result.cancelled == 0 and await rig.status("102") == "booked"
    async with rig.store.read() as q:
        state = await q.pms_state("ezyvet")
    assert state.progress["skipped"] == result.skipped  # what the console's panel shows


async def test_consent_given_at_the_kiosk_survives_the_next_sync(rig: Rig) -> None:
    await rig.loop.round()
    async with rig.store.read() as q:
        (before,) = await q.kiosk_bookings("+13125550101", TODAY)
    assert before.sms_consent is False  # ezyVet says nothing of texts: the kiosk will ask
    async with rig.store.transaction() as tx:
        await tx.set_sms_consent(before.client, True)  # what the kiosk does when the client says yes
    rig.fake.add_appointment("105", NOW.replace(hour=15), animal="55", contact="9")  # a new booking, same client
    rig.loop._last_full_mono = None
    await rig.loop.round()
    async with rig.store.read() as q:
        after = await q.kiosk_bookings("+13125550101", TODAY)
    assert [b.sms_consent for b in after] == [True, True]


async def test_a_clinic_whose_ezyvet_consent_covers_texts_can_say_so(rig: Rig) -> None:
    rig.connector.settings.texts_consented = True
    await rig.loop.round()
    async with rig.store.read() as q:
        (booking,) = await q.kiosk_bookings("+13125550101", TODAY)
    assert booking.sms_consent is True


async def test_arrivals_are_written_back_while_reading_the_day_fails(rig: Rig) -> None:
    await rig.loop.round()
    await rig.checkin("101")
    rig.fake.fail_next(5, "500", path="/v2/appointment")  # the list is down; the write endpoint is not
    with pytest.raises(ConnectorError, match="answered 500"):
        await rig.loop.round()
    assert rig.fake.writes == [("101", {"status_id": "2"})]


async def test_arrival_for_a_booking_the_client_moved_is_a_task_not_a_wrong_write(rig: Rig) -> None:
    await rig.loop.round()
    async with rig.store.transaction() as tx:
        await apply_event(tx, Event("reschedule", NOW, "ezyvet:103",
                                    {"vet": "ezyvet:vet-7", "scheduled": NOW.replace(hour=16).isoformat()}),
                          "client:link", TZ, NOW)
        await apply_event(tx, Event("checkin", NOW + timedelta(minutes=1), "ezyvet:103-r1"), "kiosk:lobby", TZ,
                          NOW + timedelta(minutes=1))
    await rig.loop.round()
    assert rig.fake.writes == []  # nothing PATCHed to an id ezyVet never had
    async with rig.store.read() as q:
        tasks = sorted(t.last_error or "" for t in await q.pms_writes(("task",), 10))
    assert tasks[0].startswith("Appointment 103 (Rex) has arrived at the time the client moved it to")


async def test_a_new_day_looks_names_and_mobiles_up_afresh(rig: Rig) -> None:
    await rig.loop.round()
    detail = next(d for d in rig.fake.details.values() if d["contact_id"] == "9")
    detail["value"] = "+1 312 555 0199"  # Maria's new mobile, entered in ezyVet
    rig.fake.add_appointment("106", NOW.replace(hour=9) + timedelta(days=1), animal="55", contact="9")
    tomorrow = NOW + timedelta(days=1)
    rig.loop.clock = lambda: tomorrow
    await rig.loop.round()  # a new day: a full read, names looked up again
    async with rig.store.read() as q:
        assert [b.pet for b in await q.kiosk_bookings("+13125550199", tomorrow.date())] == ["Bella"]


async def test_a_types_booked_length_is_its_commonest_booking(rig: Rig) -> None:
    # Vaccination, in ezyVet's order: 45 (listed first), then 20, 20, 20
    rig.fake.add_appointment("100", NOW.replace(hour=14), minutes=45)
    rig.fake.add_appointment("107", NOW.replace(hour=13), minutes=20)
    await rig.loop.round()
    async with rig.store.read() as q:
        assert (await q.booked_lengths())["ezyvet:type-30"] == 20


async def test_a_check_in_at_the_desk_in_ezyvet_checks_the_client_in_here(rig: Rig) -> None:
    await rig.loop.round()
    await rig.checkin("101")  # at the kiosk: written back as In Waiting Room
    await rig.loop.round()
    rig.fake.change("102", status_id="2")  # reception checked Rex in at the desk, in ezyVet
    result = await rig.loop.round()
    assert result.arrived == 1 and await rig.status("102") == "waiting"
    await rig.loop.round()  # ezyVet shows 101 and 102 In Waiting Room: nothing more happens
    assert rig.fake.writes == [("101", {"status_id": "2"})]  # 102's arrival came from ezyVet: not echoed
    async with rig.store.read() as q:
        checkins = await q.events_since(0, types=("checkin",))
    assert [(e.appointment, e.actor) for e in checkins] == [("ezyvet:101", "kiosk:lobby"),
                                                           ("ezyvet:102", "pms:ezyvet")]


async def test_an_undone_check_in_is_written_back_or_left_to_reception(rig: Rig) -> None:
    await rig.loop.round()
    for pms_id in ("101", "102"):
        await rig.checkin(pms_id)
    await rig.loop.round()
    async with rig.store.transaction() as tx:
        seqs = {e.appointment: e.seq for e in await tx.events_since(0, types=("checkin",))}
        await apply_event(tx, Event("undo", NOW, None, {"seq": seqs["ezyvet:101"]}), "user:ana", TZ, NOW)
    await rig.loop.round()
    async with rig.store.read() as q:
        (task,) = await q.pms_writes(("task",), 10)
    assert task.last_error == "Set appointment 101 (Bella) back to booked in ezyVet: reception undid the check-in here"
    rig.connector.settings.statuses["booked"] = "Booked"  # the clinic names its status: written back instead
    async with rig.store.transaction() as tx:
        await apply_event(tx, Event("undo", NOW, None, {"seq": seqs["ezyvet:102"]}), "user:ana", TZ, NOW)
    await rig.loop.round()
    assert rig.fake.writes[-1] == ("102", {"status_id": "1"})
    assert await rig.status("101") == "booked" and await rig.status("102") == "booked"
