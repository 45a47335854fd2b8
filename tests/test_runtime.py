"""The runtime's caches: what readers are served after a write equals a fresh estimate."""

from __future__ import annotations

from server.app import RUNTIME
from server.estimator import estimate
from server.store import load_day
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
    fresh = estimate(await load_day(rt.store.conn, DAY), now, rt.model)
    assert cached[2] == fresh
