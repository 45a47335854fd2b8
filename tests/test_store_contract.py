"""The store contract (server/store/interface.py): what every backend must do, through the
interface only. Each backend is one parameter of the `store` fixture; PostgreSQL joins here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from notifier.outbox import NewText
from server.domain import Estimate, Visit
from server.errors import BadRequest
from server.store import Clinic, SqliteStore, Store, Tx
from server.store.interface import BookedVisit, VetBlock
from server.store.postgres import PgStore

TZ = ZoneInfo("America/Chicago")
DAY = date(2026, 3, 2)
AT = datetime(2026, 3, 2, 8, 0, tzinfo=TZ)


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store
    if request.param == "postgresql":
        s = await PgStore.open(request.getfixturevalue("pg_url"))
    else:
        s = await SqliteStore.open(str(tmp_path / "c.db") if request.param == "sqlite-file" else ":memory:")
    try:
        yield s
    finally:
        await s.close()


async def test_clinic_round_trips_and_an_unknown_zone_is_refused(store: Store) -> None:
    assert (await store.clinic()).name == "Clinic"  # before one is set
    async with store.transaction() as tx:
        await tx.set_clinic(Clinic("Riverside", "America/Chicago", "US", "+13125550100", {"texts": {"x": 1}}))
    got = await store.clinic()
    assert (got.name, got.timezone, got.phone, got.settings) == ("Riverside", "America/Chicago",
                                                                 "+13125550100", {"texts": {"x": 1}})
    with pytest.raises(BadRequest):
        async with store.transaction() as tx:
            await tx.set_clinic(Clinic("X", "Mars/Olympus"))
    assert (await store.clinic()).name == "Riverside"


async def test_times_come_back_aware_and_equal_whatever_zone_went_in(store: Store) -> None:
    scheduled = datetime(2026, 3, 2, 9, 30, 0, 250000, tzinfo=timezone(timedelta(hours=-6)))
    visits = [Visit("h1", "appointment", "v1", "vax", 15, scheduled=scheduled, arrived=scheduled,
                    started=scheduled + timedelta(minutes=5), ended=scheduled + timedelta(minutes=20), pet="Rex")]
    async with store.transaction() as tx:
        await tx.set_clinic(Clinic("C", "America/Chicago"))
        await tx.save_vet("v1", "Dr. One")
        assert await tx.add_history(visits, TZ) == 1
    async with store.read() as q:
        (got,) = await q.finished_visits_before(DAY + timedelta(days=1))
        lengths = await q.booked_lengths()
    assert got.scheduled == scheduled and got.scheduled.tzinfo is not None
    assert got.scheduled.utcoffset() == timedelta(0)
    assert got.ended == scheduled + timedelta(minutes=20)
    assert lengths == {"vax": 15.0}  # a type only history knew is kept, with its booked length


async def test_a_failed_transaction_leaves_nothing_and_writers_do_not_interleave(store: Store) -> None:
    made: dict[int, str] = {}

    async def write(i: int) -> None:
        async with store.transaction() as tx:
            made[i] = await tx.create_token("kiosk", f"k{i}", AT)
            await asyncio.sleep(0)  # another writer's turn, if the lock let it in
            if i % 2:
                raise ValueError("refused")

    results = await asyncio.gather(*(write(i) for i in range(10)), return_exceptions=True)
    assert sum(isinstance(r, ValueError) for r in results) == 5
    async with store.read() as q:
        for i, token in made.items():
            assert await q.token_role(token) == (None if i % 2 else ("kiosk", f"k{i}"))


async def test_the_day_holds_its_vets_their_away_time_and_visits_not_cancelled(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.save_vet("v2", "Dr. Two")
        await tx.save_vet("v1", "Dr. One")
        await tx.save_appointment_type("vax", "Vaccination", 15)
        await tx.save_appointment_type("vax", "Vaccines", 20)  # a second save changes it
        await tx.add_history([Visit("old", "appointment", "v1", "vax", 20, scheduled=AT - timedelta(days=1),
                                    arrived=AT - timedelta(days=1))], TZ)
    async with store.read() as q:
        day = await q.visits_for_day(DAY)
        assert await q.booked_lengths() == {"vax": 20.0}
        assert await q.vet_names() == {"v1": "Dr. One", "v2": "Dr. Two"}
        assert await q.blocked_times(DAY, DAY) == []
    assert day.vets == ["v1", "v2"] and day.visits == {} and day.vet_unavailable_until == {} and day.blocks == {}


async def test_tokens_check_role_and_name(store: Store) -> None:
    async with store.transaction() as tx:
        token = await tx.create_token("display", "lobby tv", AT)
        with pytest.raises(ValueError):
            await tx.create_token("admin", "x", AT)
    async with store.read() as q:
        assert await q.token_role(token) == ("display", "lobby tv")
        assert await q.token_role(token[:-1]) is None


async def test_version_moves_on_a_commit_that_wrote_and_wakes_waiters(store: Store) -> None:
    v = store.version
    waiter = asyncio.create_task(store.wait_for_change(v, 5.0))
    async with store.transaction() as tx:
        await tx.keep_model({"k": 1}, datetime.now(UTC))
    assert await asyncio.wait_for(waiter, 5.0) is True
    assert store.version > v
    v = store.version
    async with store.transaction():
        pass  # wrote nothing
    assert store.version == v
    assert await store.wait_for_change(v, 0.01) is False


async def test_the_event_log_keeps_order_actor_data_and_undos(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.save_vet("v1", "Dr. One")
        await tx.add_arrived_visit(Visit("w1", "walkin", "v1", None, 20, arrived=AT, pet="Rex"), DAY)
        a = await tx.record_event("walkin", AT, "w1", {"vet": "v1"}, "token:kiosk", AT)
        b = await tx.record_event("noshow", AT + timedelta(minutes=1), "w1", {}, "user:ann", AT)
        c = await tx.record_event("undo", AT + timedelta(minutes=2), "w1", {"seq": b, "type": "noshow"}, "user:ann", AT)
    assert a < b < c
    async with store.read() as q:
        logged = await q.event(a)
        assert logged is not None and (logged.type, logged.actor, logged.data, logged.vet) == (
            "walkin", "token:kiosk", {"vet": "v1"}, "v1")
        assert logged.at == AT and logged.at.tzinfo is not None
        assert [e.seq for e in await q.events_since(a)] == [b, c]
        assert [e.seq for e in await q.events_since(0, types=("noshow", "undo"), limit=1)] == [b]
        assert await q.undone_seqs() == {b}
        assert await q.event(c + 1) is None


async def test_a_visit_moves_through_its_day_and_back(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.save_vet("v1", "Dr. One")
        await tx.save_vet("v2", "Dr. Two")
        await tx.add_arrived_visit(Visit("w1", "walkin", "v1", None, 20, arrived=AT, pet="Rex"), DAY)
        assert await tx.count_visits(DAY) == 1
        await tx.record_start("w1", AT + timedelta(minutes=5))
        await tx.undo_visit_event("w1", "start")
        await tx.move_visit("w1", "v2", 1.5)
        await tx.set_vet_unavailable_until("v1", AT + timedelta(minutes=30))
    async with store.read() as q:
        found = await q.visit("w1")
        day = await q.visits_for_day(DAY)
    assert found is not None and found.status == "waiting" and found.visit.started is None
    assert (found.visit.vet, found.visit.priority, found.visit.pet) == ("v2", 1.5, "Rex")
    assert day.vet_unavailable_until == {"v1": AT + timedelta(minutes=30)}
    async with store.transaction() as tx:
        await tx.set_visit_status("w1", "cancelled")
        assert await tx.count_visits(DAY) == 0


async def test_an_inbound_texts_pictures_come_back_in_order_with_reception_inbox(store: Store) -> None:
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    async with store.transaction() as tx:
        assert await tx.record_inbound("MM1", "+13125550101", None, "", "other", True, now)
        await tx.record_inbound_media("MM1", [("https://api.twilio.com/m/1", "image/jpeg"),
                                              ("https://api.twilio.com/m/2", "image/png")])
        assert await tx.record_inbound("SM2", "+13125550102", None, "hello", "other", True, now)
    async with store.transaction() as tx:
        first, second = await tx.reception_inbox(False)
    assert first["media"] == [("https://api.twilio.com/m/1", "image/jpeg"), ("https://api.twilio.com/m/2", "image/png")]
    assert second["media"] == []


async def _schedule(tx: Tx) -> None:
    """Two vets, a client with a pet, one booking by pet id and one by a bare pet name."""
    await tx.save_vet("v1", "Dr. One")
    await tx.save_vet("v2", "Dr. Two")
    await tx.save_appointment_type("vax", "Vaccination", 15)
    await tx.save_client("c1", "Ann Lee", "+13125550101", True, "es", "bites")
    await tx.save_pet("p1", "c1", "Luna", "dog", "female")
    await tx.save_bookings([
        BookedVisit("a1", DAY, "v1", "vax", "p1", None, AT + timedelta(hours=1), 15),
        BookedVisit("a2", DAY, "v2", None, None, "Rex", AT + timedelta(hours=2), 30),
    ])


async def test_a_schedule_push_upserts_by_id_and_never_rewrites_what_happened(store: Store) -> None:
    async with store.transaction() as tx:
        await _schedule(tx)
        assert await tx.has_client("c1") and not await tx.has_client("c2")
        assert await tx.known_pets(["p1", "p9", "p1"]) == {"p1"}
        assert await tx.known_pets(f"p{i}" for i in range(1200)) == {"p1"}  # more ids than one statement binds
        await tx.record_arrival("a2", AT)
        await tx.save_vet_blocks([VetBlock("b1", "v1", DAY, AT + timedelta(hours=3), AT + timedelta(hours=4), "")])
    async with store.transaction() as tx:
        # The PMS pushes again: the client changed their mobile, a1 moved an hour, a2 (arrived) too.
        await tx.save_client("c1", "Ann Lee", None, False, "en", "")
        await tx.save_pet("p1", "c1", "Luna", None, "unknown")
        await tx.save_bookings([
            BookedVisit("a1", DAY, "v2", "vax", "p1", None, AT + timedelta(hours=2), 20),
            BookedVisit("a2", DAY, "v1", None, None, "Rex", AT + timedelta(hours=5), 30),
        ])
        await tx.save_vet_blocks([VetBlock("b1", "v1", DAY, AT + timedelta(hours=3), AT + timedelta(hours=5),
                                           "meeting")])
    async with store.read() as q:
        a1, a2 = await q.board_visits(DAY)
        assert await q.blocked_times(DAY, DAY) == [("v1", AT + timedelta(hours=3), AT + timedelta(hours=5),
                                                    "meeting")]
    assert (a1.id, a1.vet, a1.scheduled, a1.booked_min, a1.pet, a1.client, a1.mobile, a1.sms_consent,
            a1.language, a1.type_name, a1.species) == ("a1", "v2", AT + timedelta(hours=2), 20.0, "Luna", "Ann Lee",
                                                      None, False, "en", "Vaccination", None)
    # What happened stays: a2 had arrived, so the re-push did not move it.
    assert (a2.id, a2.status, a2.vet, a2.scheduled, a2.arrived, a2.pet, a2.client_id) == (
        "a2", "waiting", "v2", AT + timedelta(hours=2), AT, "Rex", None)


async def test_the_board_reads_promises_people_events_alerts_inbox_and_unsettled_texts(store: Store) -> None:
    later = AT + timedelta(hours=1)
    async with store.transaction() as tx:
        await _schedule(tx)
        await tx.keep_first_promises({"a1": Estimate("a1", later, later, later + timedelta(minutes=10))}, AT)
        ids = await tx.insert_texts([
            NewText("k1", "+13125550101", "late", "delay", "a1", told=(later, later, later + timedelta(minutes=30))),
            NewText("k2", "+13125550101", "later", "delay", "a1", told=(later, later, later + timedelta(minutes=50))),
            NewText("k3", "+13125550101", "later still", "delay", "a1",
                    told=(later, later, later + timedelta(minutes=70))),
            NewText("k4", "+13125559999", "hello", "console"),
        ], AT)
        await tx.mark_text_failed(ids[1], AT, "30003", "unreachable")  # a failed text told nothing
        await tx.mark_text_held(ids[2], AT, "timed out")
        await tx.mark_text_failed(ids[3], AT, None, "cancelled by reception")
        await tx.wait_in_car("a1", AT)
        people = await tx.record_event("checkin", AT, "a1", {}, "token:lobby", AT)
        await tx.record_event("estimate", AT, None, {}, "system", AT)
        moved = await tx.record_event("reschedule", AT, "a2", {"from_status": "waiting"}, "client", AT)
        old = await tx.record_event("urgent", AT - timedelta(days=1), None, {}, "token:lobby", AT)
        assert await tx.record_inbound("SM1", "+13125550101", None, "running late?", "other", True, AT)
        await tx.set_inbound_visit("SM1", "a1", "other")
        await tx.record_inbound_media("SM1", [("https://x/1", "image/png")])
        assert await tx.record_inbound("SM2", "+13125550102", None, "STOP", "other", False, AT)
        await tx.add_reschedule_request("link:1", "+13125550103", "move me", "a2", AT)
    async with store.read() as q:
        assert await q.visits_waiting_in_car() == {"a1"}
        assert await q.told_range_ends(["a1", "a2"]) == [("a1", later + timedelta(minutes=m)) for m in (10, 30, 70)]
        assert [e.seq for e in await q.events_by_people(AT, ("reschedule",), 10)] == [old, moved, people]
        assert [e.seq for e in await q.events_by_people(AT, ("reschedule",), 1)] == [old]
        assert [e.seq for e in await q.events_by_people(AT + timedelta(seconds=1), ("reschedule",), 10)] == []
        assert [(e.seq, e.vet) for e in await q.events_at_or_after(AT, ("urgent", "reschedule"))] == [(moved, "v2")]
        first, second = await q.inbox_messages()
        unsettled = await q.unsettled_texts(AT, None, ("dropped", "dismissed"), "cancelled by reception")
        assert await q.unsettled_texts(AT + timedelta(seconds=1), None, (), "x") == []
        assert [t.id for t in await q.unsettled_texts(None, ids[2], (), "x")] == [ids[2]]
    assert (first.body, first.client, first.pet, first.media, first.received) == (
        "running late?", "Ann Lee", "Luna", [("https://x/1", "image/png")], AT)
    assert (second.kind, second.pet, second.client) == ("reschedule", "Rex", None)
    assert [(t.id, t.status, t.error_code, t.vet, t.client, t.pet, t.scheduled, t.opted_out) for t in unsettled] == [
        (ids[1], "failed", "30003", "Dr. One", "Ann Lee", "Luna", AT + timedelta(hours=1), False),
        (ids[2], "held", "unknown_if_sent", "Dr. One", "Ann Lee", "Luna", AT + timedelta(hours=1), False)]


async def test_a_connectors_state_and_write_backs_round_trip_once_each(store: Store) -> None:
    from server.store.pms import NewPmsWrite

    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    async with store.transaction() as tx:
        state = await tx.pms_state("ezyvet")
        assert (state.cursor, state.events_seen, state.last_ok_at) == (None, 0, None)
        state.cursor, state.events_seen, state.last_ok_at, state.progress = "1800000000", 7, now, {"imported": 3}
        await tx.save_pms_state(state)
        rows = [NewPmsWrite("ezyvet", "ezyvet:8:arrived", "ezyvet:101", "arrived", {"pet": "Bella"}),
                NewPmsWrite("ezyvet", "ezyvet:9:rescheduled", "ezyvet:102", "rescheduled", {}, status="task")]
        assert await tx.queue_pms_writes(rows, now) == 2
        assert await tx.queue_pms_writes(rows[:1], now) == 0  # the same event never queues twice
        await tx.save_vet("ezyvet:vet-7", "Dr. Seven")
        await tx.add_arrived_visit(Visit("ezyvet:101", "appointment", "ezyvet:vet-7", None, 20, arrived=AT), DAY)
        await tx.add_arrived_visit(Visit("other:5", "appointment", "ezyvet:vet-7", None, 20, arrived=AT), DAY)
    async with store.read() as q:
        got = await q.pms_state("ezyvet")
        assert (got.cursor, got.events_seen, got.last_ok_at, got.progress) == ("1800000000", 7, now, {"imported": 3})
        assert [s.pms for s in await q.pms_states()] == ["ezyvet"]
        due = await q.due_pms_writes("ezyvet", now, 10)
        assert [(d.visit_id, d.action, d.data, d.attempts) for d in due] == [("ezyvet:101", "arrived", {"pet": "Bella"},
                                                                              0)]
        assert await q.pms_booked_visits("ezyvet:", DAY, DAY) == {"ezyvet:101": "waiting"}
        assert [t.action for t in await q.pms_writes(("task",), 10)] == ["rescheduled"]
    async with store.transaction() as tx:
        await tx.finish_pms_write(due[0].id, "queued", now, error="500", next_at=now + timedelta(seconds=10))
    async with store.read() as q:
        assert await q.due_pms_writes("ezyvet", now, 10) == []  # backing off
        (later,) = await q.due_pms_writes("ezyvet", now + timedelta(seconds=10), 10)
    assert (later.attempts, later.last_error) == (1, "500")
    async with store.transaction() as tx:
        await tx.finish_pms_write(later.id, "sent", now)
    async with store.read() as q:
        assert [(w.status, w.attempts) for w in await q.pms_writes(("sent",), 10)] == [("sent", 2)]


async def test_client_preferences_are_read_for_the_ids_that_exist(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.save_client("ezyvet:client-9", "Maria Lopez", "+13125550101", True, "es", "")
        await tx.save_client("ezyvet:client-10", "Tom Baker", None, False, "en", "")
    async with store.read() as q:
        got = await q.client_preferences(["ezyvet:client-9", "ezyvet:client-10", "ezyvet:client-11"])
    assert got == {"ezyvet:client-9": (True, "es"), "ezyvet:client-10": (False, "en")}
