"""The runtime's caches: what readers are served after a write equals a fresh estimate."""

from __future__ import annotations

from typing import Any

import pytest

from server.app import RUNTIME
from server.estimator import estimate
from tests.conftest import DAY, Api


async def _served(api: Api) -> dict[str, tuple[str, str, str]]:
    body = await (await api.client.get("/api/estimates", headers=api.h("reception"))).json()
    return {e["appointment"]: (e["start"], e["p10"], e["p90"]) for e in body["estimates"]}


async def test_estimates_served_after_one_vets_event_equal_a_full_recomputation(api: Api) -> None:
    assert api.client.app is not None
    rt = api.client.app[RUNTIME]
    await _served(api)  # readers have the full estimates of this moment cached
    await api.event({"type": "checkin", "appointment": f"{DAY.isoformat()}-v1-0800"})
    await api.event({"type": "emergency", "id": "e1", "vet": "v2", "expected_min": 50})
    cached = rt._est_cache
    assert cached is not None and cached[0] == rt.store.version  # primed by the writes, not recomputed
    now = cached[1]
    async with rt.store.read() as q:
        fresh = estimate(await q.visits_for_day(DAY), now, rt.model)
    assert cached[2] == fresh


async def test_a_lobby_of_readers_costs_one_estimate_until_something_changes(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # Counted at the estimator itself: displays and phones poll all day; the day is estimated
    # again only when an event lands or the clock moves past the 10-s window.
    import server.runtime

    calls: list[str] = []

    def counting(*args: Any, **kw: Any) -> Any:
        calls.append("estimate")
        return estimate(*args, **kw)

    monkeypatch.setattr(server.runtime, "estimate", counting)
    first = await _served(api)
    for _ in range(30):
        assert await _served(api) == first
    assert len(calls) == 1
    api.clock.advance(seconds=11)  # the next window: estimated once more for all readers
    for _ in range(10):
        await _served(api)
    assert len(calls) == 2
    await api.event({"type": "checkin", "appointment": f"{DAY.isoformat()}-v1-0800"})
    evaluated = len(calls)  # the write re-estimated its vet, and readers reuse that
    for _ in range(10):
        await _served(api)
    assert len(calls) == evaluated
