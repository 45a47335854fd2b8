"""The wait-time estimator: dispatch rule, in-progress consults, calibration, invariants."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.domain import DayState, Visit
from server.estimator import FUTURE_BIN_MIN, MAX_HORIZON_MIN, _bin_hours, _quantiles, dispatch_order, estimate
from server.learning import DEFAULT_SETTINGS, Model, learn, local_hour
from tests.test_learning import BOOKED, _history

DAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _appt(i: int, vet: str, minute: float, typ: str = "sick", **kw: object) -> Visit:
    return Visit(id=f"{vet}-a{i}", kind="appointment", vet=vet, type=typ, booked_min=BOOKED[typ],
                 scheduled=DAY + timedelta(minutes=minute), **kw)  # type: ignore[arg-type]


def _mins(t: datetime, now: datetime) -> float:
    return (t - now).total_seconds() / 60.0


@pytest.fixture(scope="module")
def model() -> Model:
    return learn(_history({"v1": 1.0, "v2": 1.0, "v3": 1.0}), BOOKED)


def test_booked_fallback_queues_waiting_clients_in_scheduled_order() -> None:
    now = DAY + timedelta(minutes=30)
    arrived = DAY
    state = DayState(vets=["v1"], visits={v.id: v for v in [
        _appt(2, "v1", 20, arrived=arrived),
        _appt(1, "v1", 0, arrived=arrived),
        _appt(3, "v1", 40, arrived=arrived),
        _appt(0, "v1", -30, arrived=arrived, started=now - timedelta(minutes=5)),
    ]})
    est = estimate(state, now, None)
    assert set(est) == {"v1-a1", "v1-a2", "v1-a3"}
    # In consult for 5 of its 20 booked minutes, then 20 each.
    assert _mins(est["v1-a1"].start, now) == pytest.approx(15)
    assert _mins(est["v1-a2"].start, now) == pytest.approx(35)
    assert _mins(est["v1-a3"].start, now) == pytest.approx(55)


def test_nobody_starts_more_than_five_minutes_early_or_before_vet_is_back(model: Model) -> None:
    now = DAY
    state = DayState(vets=["v1", "v2"], visits={v.id: v for v in [
        _appt(1, "v1", 60, arrived=now), _appt(1, "v2", 0, arrived=now)]},
        vet_unavailable_until={"v2": now + timedelta(minutes=30)})
    for m in (None, model):
        est = estimate(state, now, m)
        assert _mins(est["v1-a1"].start, now) >= 55 - 1e-9
        assert _mins(est["v1-a1"].p10, now) >= 55 - 1e-9
        assert _mins(est["v2-a1"].p10, now) >= 30 - 1e-9


def test_emergency_goes_before_waiting_clients(model: Model) -> None:
    now = DAY
    base = {v.id: v for v in [_appt(1, "v1", 0, arrived=now), _appt(2, "v1", 5, arrived=now)]}
    em = Visit(id="e1", kind="emergency", vet="v1", type=None, booked_min=0, arrived=now, expected_min=40)
    plain = estimate(DayState(vets=["v1"], visits=dict(base)), now, model)
    with_em = estimate(DayState(vets=["v1"], visits={**base, "e1": em}), now, model)
    assert _mins(with_em["e1"].start, now) == pytest.approx(0.0)  # seen at once
    assert _mins(with_em["v1-a1"].start, now) > _mins(plain["v1-a1"].start, now) + 25


def _running_state(elapsed: float) -> tuple[DayState, datetime]:
    now = DAY + timedelta(minutes=60)
    return DayState(vets=["v1"], visits={v.id: v for v in [
        _appt(0, "v1", 0, arrived=DAY, started=now - timedelta(minutes=elapsed)),
        _appt(1, "v1", 10, arrived=DAY),
    ]}), now


def test_remaining_time_grows_with_elapsed_for_long_tailed_type() -> None:
    rng = random.Random(3)
    hist = _history({"v1": 1.0}, days=4)
    for v in hist:  # heavy right tail: log-normal with sigma 0.9
        assert v.started is not None
        v.ended = v.started + timedelta(minutes=v.booked_min * math.exp(rng.gauss(-0.3, 0.9)))
    model = learn(hist, BOOKED)
    waits = []
    for elapsed in (5.0, 25.0, 50.0):
        state, now = _running_state(elapsed)
        waits.append(_mins(estimate(state, now, model)["v1-a1"].start, now))
    # A consult far past its median is expected to run on, not to end at once.
    assert waits[0] < waits[1] < waits[2]
    assert waits[2] > 5.0


def test_overrunning_consult_is_not_assumed_over(model: Model) -> None:
    state, now = _running_state(60.0)  # a 20-minute sick visit at 60 minutes
    est = estimate(state, now, model)["v1-a1"]
    assert est.start >= now
    assert _mins(est.p90, now) > 0.5


def test_not_yet_arrived_client_becomes_likelier_noshow_and_others_move_up(model: Model) -> None:
    """A booked client who is very late is probably not coming: those after them move up."""
    early = DAY + timedelta(minutes=1)
    late = DAY + timedelta(minutes=19)
    waits = []
    for now in (early, late):
        state = DayState(vets=["v1"], visits={v.id: v for v in [
            _appt(1, "v1", 0), _appt(2, "v1", 0, arrived=DAY - timedelta(minutes=2))]})
        # a2 shares a1's time but a1's key sorts first if a1 shows up.
        waits.append(_mins(estimate(state, now, model)["v1-a2"].start, now))
    assert waits[1] < waits[0] + 1e-9


def _simulate_day(rng: random.Random, n: int, sigma: float) -> tuple[list[Visit], list[float]]:
    """n clients, all waiting at 8:00, one vet; true log-normal lengths with known sigma."""
    visits, starts, t = [], [], 0.0
    for i in range(n):
        length = 20.0 * math.exp(rng.gauss(0.0, sigma))
        visits.append(_appt(i, "v1", 0, arrived=DAY - timedelta(minutes=10)))
        starts.append(t)
        t += length + 1.0
    return visits, starts


def test_ranges_cover_about_eighty_percent_on_a_known_synthetic_clinic() -> None:
    rng = random.Random(7)
    sigma = 0.3
    hist: list[Visit] = []
    for d in range(15):
        t0 = DAY - timedelta(days=d + 1)
        t = t0
        for i in range(12):
            length = 20.0 * math.exp(rng.gauss(0.0, sigma))
            hist.append(Visit(id=f"h{d}-{i}", kind="appointment", vet="v1", type="sick", booked_min=20.0,
                              scheduled=t0, arrived=t0 - timedelta(minutes=10), started=t,
                              ended=t + timedelta(minutes=length)))
            t += timedelta(minutes=length + 1.0)
    model = learn(hist, BOOKED)
    inside = after = total = 0
    for day in range(30):
        visits, truth = _simulate_day(rng, 8, sigma)
        now = DAY + timedelta(seconds=day)  # vary the seed a little
        est = estimate(DayState(vets=["v1"], visits={v.id: v for v in visits}), now, model)
        for v, s in zip(visits, truth, strict=True):
            e = est[v.id]
            lo, hi = _mins(e.p10, now), _mins(e.p90, now)
            inside += lo <= s <= hi
            after += s > hi
            total += 1
    assert 0.7 <= inside / total <= 0.92
    assert after / total <= 0.15


def test_same_input_gives_same_answer(model: Model) -> None:
    state = DayState(vets=["v1"], visits={v.id: v for v in [_appt(i, "v1", 20 * i) for i in range(6)]})
    assert estimate(state, DAY, model) == estimate(state, DAY, model)


# -- properties ------------------------------------------------------------------------

STATUSES = ("booked", "waiting", "done", "noshow", "late")


@st.composite
def day_states(draw: st.DrawFn) -> tuple[DayState, datetime]:
    n_vets = draw(st.integers(1, 3))
    vets = [f"v{i}" for i in range(1, n_vets + 1)]
    now = DAY + timedelta(minutes=draw(st.integers(-30, 300)))
    visits: dict[str, Visit] = {}
    for vet in vets:
        n = draw(st.integers(0, 8))
        running = False
        for i in range(n):
            minute = 20 * i + draw(st.integers(0, 10))
            sched = DAY + timedelta(minutes=minute)
            status = draw(st.sampled_from(STATUSES))
            v = _appt(i, vet, minute, typ=draw(st.sampled_from(sorted(BOOKED))))
            v.priority = draw(st.none() | st.sampled_from([1.0, 2.0]))
            if sched < now and status != "booked":
                v.arrived = min(sched, now)
                if status == "done":
                    v.started, v.ended = v.arrived, v.arrived + (now - v.arrived) / 2
                elif status == "noshow":
                    v.arrived, v.noshow = None, True
                elif status == "late" and not running:
                    v.started, running = v.arrived, True
            visits[v.id] = v
        if draw(st.booleans()):
            visits[f"w-{vet}"] = Visit(id=f"w-{vet}", kind="walkin", vet=vet, type="sick", booked_min=20.0,
                                       arrived=now - timedelta(minutes=draw(st.integers(0, 30))))
    unavailable = {}
    if draw(st.booleans()):
        unavailable[vets[0]] = now + timedelta(minutes=draw(st.integers(-20, 60)))
    return DayState(vets=vets, visits=visits, vet_unavailable_until=unavailable), now


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(day=day_states(), use_model=st.booleans())
def test_every_pending_visit_gets_an_estimate_never_before_now(
    model: Model, day: tuple[DayState, datetime], use_model: bool
) -> None:
    state, now = day
    est = estimate(state, now, model if use_model else None)
    assert set(est) == {vid for vid, v in state.visits.items() if v.pending}
    for e in est.values():
        assert now <= e.p10 <= e.start <= e.p90


@FAST
@given(day=day_states(), use_model=st.booleans(), expected=st.none() | st.sampled_from([15.0, 60.0]))
def test_emergency_delays_only_that_vets_queue(
    model: Model, day: tuple[DayState, datetime], use_model: bool, expected: float | None
) -> None:
    state, now = day
    m = model if use_model else None
    before = estimate(state, now, m)
    em = Visit(id="e1", kind="emergency", vet="v1", type=None, booked_min=0, arrived=now, expected_min=expected)
    after = estimate(DayState(state.vets, {**state.visits, "e1": em}, state.vet_unavailable_until), now, m)
    assert set(after) == set(before) | {"e1"}  # an emergency waiting is itself pending
    assert after["e1"].start >= now
    for vid, e in before.items():
        if state.visits[vid].vet != "v1":
            assert after[vid] == e
        elif m is None:
            # Booked lengths: the vet takes the emergency before anyone not yet in consult. (A
            # later client may even start sooner: while the vet was busy, a prioritised client
            # arrived and now goes before a walk-in who would otherwise have been taken first.)
            assert after["e1"].start <= after[vid].start


@FAST
@given(day=day_states(), use_model=st.booleans())
def test_one_vets_waiting_clients_start_in_dispatch_order(
    model: Model, day: tuple[DayState, datetime], use_model: bool
) -> None:
    state, now = day
    est = estimate(state, now, model if use_model else None)
    # Clients already here and due (so nothing but the order holds them back).
    due = [v for v in state.visits.values() if v.pending and v.vet == "v1" and v.arrived is not None
           and (v.scheduled is None or v.scheduled <= now + timedelta(minutes=5))]

    def order(v: Visit) -> tuple[float, datetime]:
        t = v.scheduled or v.arrived
        assert t is not None
        return (v.priority if v.priority is not None else math.inf, t)

    due.sort(key=order)
    starts = [est[v.id].start for v in due]
    assert starts == sorted(starts)


@FAST
@given(day=day_states())
def test_dispatch_order_is_the_order_of_the_booked_length_estimates(day: tuple[DayState, datetime]) -> None:
    # The board's line (server/web/board.py) is this order: it must list each vet's pending
    # visits, and never put one before a visit the estimator starts earlier.
    state, now = day
    order = dispatch_order(state, now)
    est = estimate(state, now, None)
    assert sorted(vid for ids in order.values() for vid in ids) == sorted(est)
    for vet, ids in order.items():
        assert all(state.visits[vid].vet == vet for vid in ids)
        starts = [est[vid].start for vid in ids]
        assert starts == sorted(starts)


def test_blocked_time_starts_nobody_inside_it_and_ends_when_it_ends(model: Model) -> None:
    # Dr. v1 has a staff meeting 60-90 min from now; one client waits, one is booked inside it.
    now = DAY
    visits = {v.id: v for v in [_appt(1, "v1", 50, arrived=now), _appt(2, "v1", 70, arrived=now)]}
    meeting = (now + timedelta(minutes=60), now + timedelta(minutes=90))
    for m in (None, model):
        free = estimate(DayState(vets=["v1"], visits=dict(visits)), now, m)
        held = estimate(DayState(vets=["v1"], visits=dict(visits), blocks={"v1": [meeting]}), now, m)
        # Nobody starts inside the meeting, in any sample: its end is the earliest the range allows.
        assert _mins(held["v1-a2"].p10, now) >= 90 - 1e-9
        assert _mins(held["v1-a2"].start, now) > _mins(free["v1-a2"].start, now)
        # A consult begun before the meeting is not cut short by it.
        assert held["v1-a1"].start == free["v1-a1"].start
    # A meeting already over changes nothing.
    past = (now - timedelta(minutes=90), now - timedelta(minutes=60))
    assert estimate(DayState(vets=["v1"], visits=dict(visits), blocks={"v1": [past]}), now, model) == \
        estimate(DayState(vets=["v1"], visits=dict(visits)), now, model)


@FAST
@given(day=day_states(), use_model=st.booleans())
def test_one_vets_estimates_are_those_of_the_whole_clinic(
    model: Model, day: tuple[DayState, datetime], use_model: bool
) -> None:
    # The runtime re-estimates only the vet an event touched: it must tell that vet's clients
    # exactly what a full run tells them (queues are dispatched together, samples of a vet
    # that has started everyone are dropped along the way).
    state, now = day
    m = model if use_model else None
    full = estimate(state, now, m)
    for vet in state.vets:
        one = estimate(state, now, m, vets={vet})
        assert one == {vid: e for vid, e in full.items() if state.visits[vid].vet == vet}


@settings(max_examples=60, deadline=None)
@given(columns=st.lists(st.lists(st.floats(-500, 500), min_size=3, max_size=3), min_size=1, max_size=40),
       levels=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4))
def test_range_read_off_sorted_samples_is_numpys_quantile(columns: list[list[float]], levels: list[float]) -> None:
    samples = np.asarray(columns)  # (samples, visits)
    got = _quantiles(np.sort(samples, axis=0), tuple(levels))
    assert np.allclose(got, np.quantile(samples, levels, axis=0), rtol=0, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(minute=st.integers(0, 24 * 60 * 3), second=st.integers(0, 59),
       clinic_offset=st.none() | st.sampled_from([-300.0, -240.0, 0.0, 60.0, 330.0]),
       query_offset=st.sampled_from([-300, -240, 0, 60]))
def test_future_arrival_hours_are_the_clinics_clock(
    minute: int, second: int, clinic_offset: float | None, query_offset: int
) -> None:
    tz = timezone(timedelta(minutes=query_offset))
    now = (DAY + timedelta(minutes=minute, seconds=second)).astimezone(tz)
    m = Model(booked=dict(BOOKED), utc_offset_min=clinic_offset)
    want = [local_hour(now + timedelta(minutes=FUTURE_BIN_MIN * (b + 0.5)), clinic_offset)
            for b in range(int(MAX_HORIZON_MIN / FUTURE_BIN_MIN))]
    assert _bin_hours(now, m).tolist() == want


def test_a_range_starts_where_the_clinics_own_days_put_it() -> None:
    # A steady clinic: clients come 10 minutes early and the vet is free at their time, so
    # most consults start at the earliest the rules allow. A range read at the simulation's
    # 10% would start there for everyone and hold nearly all starts, telling clients nothing
    # about the rest; calibrated on the clinic's own days, its start leaves about 1 in 10
    # real starts before it, and it never starts before the earliest allowed.
    rng = random.Random(3)
    hist: list[Visit] = []
    for d in range(6):
        t0 = DAY - timedelta(days=d + 1)
        for i in range(14):
            sched = t0 + timedelta(minutes=30 * i)
            length = 20.0 * math.exp(rng.gauss(0.0, 0.3))
            start = sched - timedelta(minutes=5)
            hist.append(Visit(id=f"h{d}-{i}", kind="appointment", vet="v1", type="sick", booked_min=20.0,
                              scheduled=sched, arrived=sched - timedelta(minutes=10), started=start,
                              ended=start + timedelta(minutes=length)))
    model = learn(hist, BOOKED)
    assert model.calibration["coming"][0] > DEFAULT_SETTINGS.tail_low
    assert model.calibration["coming"][1] >= 1.0 - DEFAULT_SETTINGS.tail  # the end is never pulled in
    now = DAY
    state = DayState(vets=["v1"], visits={v.id: v for v in [_appt(i, "v1", 30 * i) for i in range(8)]})
    for e in estimate(state, now, model).values():
        sched = state.visits[e.visit].scheduled
        assert sched is not None
        assert e.p10 >= min(sched - timedelta(minutes=5), now) - timedelta(microseconds=1)


def test_a_type_never_booked_is_learned_fast_from_its_first_consults_today() -> None:
    # The clinic's history has vaccinations and sick visits only. Today its first two
    # wellness exams (booked 30 min) took 75 min each: the next wellness exam is expected to
    # run long too, and the client after it is told so (a booked length never checked can be
    # far off), while the vet's other visits are not taken for an off day.
    model = learn(_history({"v1": 1.0}, days=10), BOOKED)
    assert "wellness" not in model.type_n
    now = DAY + timedelta(minutes=160)
    done = [_appt(i, "v1", 80 * i, typ="wellness", arrived=DAY + timedelta(minutes=80 * i),
                  started=DAY + timedelta(minutes=80 * i), ended=DAY + timedelta(minutes=80 * i + 75))
            for i in range(2)]
    waiting = [_appt(5, "v1", 150, typ="wellness", arrived=now), _appt(6, "v1", 155, typ="vacc", arrived=now)]
    fresh = [_appt(5, "v1", 150, typ="wellness", arrived=now), _appt(6, "v1", 155, typ="vacc", arrived=now)]
    seen = estimate(DayState(vets=["v1"], visits={v.id: v for v in done + waiting}), now, model)
    not_seen = estimate(DayState(vets=["v1"], visits={v.id: v for v in fresh}), now, model)
    assert _mins(seen["v1-a6"].start, now) > _mins(not_seen["v1-a6"].start, now) + 25
    # Before any is seen, the range after a new type's consult is wider than after a known one's.
    known = estimate(DayState(vets=["v1"], visits={v.id: v for v in [
        _appt(5, "v1", 150, typ="sick", arrived=now), _appt(6, "v1", 155, typ="vacc", arrived=now)]}), now, model)
    assert _mins(not_seen["v1-a6"].p90, now) - _mins(not_seen["v1-a6"].start, now) > \
        _mins(known["v1-a6"].p90, now) - _mins(known["v1-a6"].start, now)


def test_a_vet_slow_at_a_new_type_pushes_their_own_clients_not_the_other_vets() -> None:
    # Neither vet has ever done a wellness exam (booked 30 min). This morning v1's two took
    # 90 min each, v2's two took 30. v1's next wellness is expected long, and the client after
    # it is told a later time than v2's client in the same place in line.
    model = learn(_history({"v1": 1.0, "v2": 1.0}, days=10), BOOKED)
    assert "wellness" not in model.type_n
    now = DAY + timedelta(minutes=200)
    visits: list[Visit] = []
    for vet, length in (("v1", 90), ("v2", 30)):
        visits += [_appt(i, vet, 95 * i, typ="wellness", arrived=DAY + timedelta(minutes=95 * i),
                         started=DAY + timedelta(minutes=95 * i),
                         ended=DAY + timedelta(minutes=95 * i + length)) for i in range(2)]
        visits += [_appt(5, vet, 200, typ="wellness", arrived=now), _appt(6, vet, 205, typ="vacc", arrived=now)]
    est = estimate(DayState(vets=["v1", "v2"], visits={v.id: v for v in visits}), now, model)
    assert _mins(est["v1-a6"].start, now) > _mins(est["v2-a6"].start, now) + 30
    # v2's client is not told v1's slowness: about a booked wellness exam ahead of them.
    assert _mins(est["v2-a6"].start, now) < 50


def test_a_vet_running_slow_this_morning_pushes_their_later_clients_only() -> None:
    # Both vets usually take their booked length. This morning v1's three consults each took
    # 1.8x booked; v2's took their booked length. At 10:00 each has six clients booked from
    # 10:00 on: v1's sixth is told clearly later than with an ordinary morning, v2's is not moved.
    model = learn(_history({"v1": 1.0, "v2": 1.0}, days=10), BOOKED)
    now = DAY + timedelta(minutes=120)

    def day(v1_speed: float) -> DayState:
        visits: list[Visit] = []
        for vet, speed in (("v1", v1_speed), ("v2", 1.0)):
            t = DAY
            for i in range(3):
                length = BOOKED["sick"] * speed
                visits.append(_appt(i, vet, 20 * i, arrived=DAY + timedelta(minutes=20 * i - 5), started=t,
                                    ended=t + timedelta(minutes=length)))
                t += timedelta(minutes=length + 1)
            visits += [_appt(10 + j, vet, 120 + 20 * j, arrived=now) for j in range(6)]
        return DayState(vets=["v1", "v2"], visits={v.id: v for v in visits})

    slow, usual = estimate(day(1.8), now, model), estimate(day(1.0), now, model)
    assert _mins(slow["v1-a15"].start, now) > _mins(usual["v1-a15"].start, now) + 20
    assert abs(_mins(slow["v2-a15"].start, now) - _mins(usual["v2-a15"].start, now)) < 2
