"""What the estimate's speed work must not change: the same starts, and never a stale day."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from server.estimator import _dispatch_arrays, _dispatch_rows, _Queue, estimate
from server.events import Event, apply_event
from server.replay import Replay
from server.runtime import ClinicRuntime
from server.store import SqliteStore
from tests.test_replay import DAY as REPLAY_DAY

TIMES = st.sampled_from([0.0, 0.0, 5.0, 12.5, 30.0, float("inf")]) | st.floats(0, 300, allow_nan=False)


@st.composite
def queues(draw: st.DrawFn) -> tuple[_Queue, np.ndarray]:
    """A stack of a few rows as `_dispatch_all` builds them: ties in keys and times, visits that
    never come (inf), blocked time (a hold), emergencies' very low keys, columns not owed."""
    n = draw(st.integers(1, 6))
    k = draw(st.integers(1, 9))
    cells = st.lists(TIMES, min_size=n * k, max_size=n * k)
    ready = np.array(draw(cells)).reshape(n, k)
    keys = np.array(draw(st.lists(st.sampled_from([-1e7, -5e6, 0.0, 15.0, 15.0, 40.0]) | st.floats(-20, 300),
                                  min_size=n * k, max_size=n * k))).reshape(n, k)
    # As built: only what never comes has an infinite key (padding, a future walk-in that does
    # not happen), and everyone owed an estimate comes.
    keys = np.where(np.isinf(ready) & draw(st.booleans()), np.inf, keys)
    dur = np.array(draw(st.lists(st.sampled_from([0.0, 15.0]) | st.floats(0, 90), min_size=n * k,
                                 max_size=n * k))).reshape(n, k)
    hold = np.array(draw(st.lists(st.sampled_from([-np.inf, -np.inf, 20.0, 60.0]), min_size=n * k,
                                  max_size=n * k))).reshape(n, k)
    free = np.array(draw(st.lists(st.floats(0, 120), min_size=n, max_size=n)))
    owed = np.array(draw(st.lists(st.booleans(), min_size=n * k, max_size=n * k))).reshape(n, k) & np.isfinite(ready)
    return _Queue(free=free, ready=ready, key=keys, dur=dur, hold=hold, floor=np.zeros(k), ids=[]), owed


@settings(max_examples=300, deadline=None)
@given(case=queues())
def test_dispatch_row_by_row_starts_everyone_owed_when_the_vectorised_rule_does(
        case: tuple[_Queue, np.ndarray]) -> None:
    # The booked-length pass (one row per vet) runs in plain Python; every estimate and the
    # board's line read it, so it must be the same rule to the last bit.
    q, owed = case
    by_rows, by_arrays = _dispatch_rows(q, owed), _dispatch_arrays(q, owed)
    assert np.array_equal(by_rows[owed], by_arrays[owed], equal_nan=True)


async def _replay_runtime() -> tuple[Replay, ClinicRuntime]:
    store = await SqliteStore.open(":memory:")
    replay = Replay(store)
    for msg in REPLAY_DAY[:3]:  # clinic, history, schedule for 2026-03-02
        await replay.handle(msg)
    assert replay.runtime is not None
    return replay, replay.runtime


async def _fresh(rt: ClinicRuntime, now: datetime) -> dict[str, object]:
    async with rt.store.read() as q:
        return dict(estimate(await q.visits_for_day(rt.today(now)), now, rt.model))


async def test_the_periodic_tick_reads_the_day_again_after_a_write_it_did_not_make() -> None:
    # The tick reuses today's state when nothing was written since it was read; a write by any
    # path (here one that skips after_change) must make it read again, or clients would be
    # told estimates for a lobby that has changed.
    replay, rt = await _replay_runtime()
    try:
        now = datetime.fromisoformat("2026-03-02T07:50:00-05:00")
        await rt.tick(now)
        before = await rt.estimates(now, exact=True)
        later = now + timedelta(minutes=3)
        async with rt.store.transaction() as tx:
            await apply_event(tx, Event("checkin", later, "a2"), "test", rt.clinic.tz, later)
        await rt.tick(later)
        got = await rt.estimates(later, exact=True)
        assert got == await _fresh(rt, later)
        assert (await rt.day_state(rt.today(later))).visits["a2"].arrived == later
        assert got["a2"] != before["a2"]
    finally:
        await replay.store.close()


async def test_a_tick_on_the_next_day_estimates_that_day_not_the_one_cached() -> None:
    replay, rt = await _replay_runtime()
    try:
        now = datetime.fromisoformat("2026-03-02T07:50:00-05:00")
        await rt.tick(now)
        assert set(await rt.estimates(now, exact=True)) == {"a1", "a2", "a3"}
        await replay.handle({"type": "schedule", "date": "2026-03-03", "appointments": [
            {"id": "b1", "vet": "v2", "type": "vacc", "booked_min": 15,
             "scheduled": "2026-03-03T09:00:00-05:00", "pet": "Toby"}]})
        rt = replay.runtime
        assert rt is not None and rt.today(now + timedelta(days=1)) == date(2026, 3, 3)
        await rt.tick(now)  # the cached day first, then the next one
        tomorrow = now + timedelta(days=1)
        await rt.tick(tomorrow)
        got = await rt.estimates(tomorrow, exact=True)
        assert set(got) == {"b1"}
        assert got == await _fresh(rt, tomorrow)
    finally:
        await replay.store.close()
