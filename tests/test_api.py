"""The HTTP API against create_app with a real SQLite file: routes, errors, auth."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from server.app import RUNTIME, create_app
from server.config import Config
from tests.conftest import DAY, Api

FIRST_V1 = f"{DAY.isoformat()}-v1-0800"


async def test_health_is_public(api: Api) -> None:
    resp = await api.client.get("/api/health")
    assert resp.status == 200
    assert await resp.json() == {"ok": True}


async def test_openapi_describes_every_route(api: Api) -> None:
    doc = await (await api.client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    app = api.client.app
    assert app is not None
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD" and path:
            served.add((path, route.method.lower()))
    described = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert served == described


async def test_estimates_need_a_token(api: Api) -> None:
    assert (await api.client.get("/api/estimates")).status == 401
    resp = await api.client.get("/api/estimates", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401
    assert (await resp.json())["field"] == "Authorization"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", "/api/estimates", {"pms", "reception", "display"}),
        ("get", f"/api/appointments/{FIRST_V1}", {"pms", "reception"}),
        ("post", "/api/events", {"pms", "reception"}),
        ("post", "/api/schedule", {"pms", "reception"}),
        ("post", "/api/kiosk/lookup", {"kiosk"}),
        ("get", "/api/changes", {"pms"}),
    ],
)
async def test_each_role_reaches_only_its_routes(api: Api, method: str, path: str, allowed: set[str]) -> None:
    for role in ("pms", "kiosk", "reception", "display"):
        resp = await getattr(api.client, method)(path, headers=api.h(role), json={})
        if role in allowed:
            assert resp.status not in (401, 403), (role, await resp.text())
        else:
            assert resp.status == 403, (role, await resp.text())


async def test_whole_clinic_estimates_cover_every_pending_visit(api: Api) -> None:
    resp = await api.client.get("/api/estimates", headers=api.h("display"))
    body = await resp.json()
    ids = {e["appointment"] for e in body["estimates"]}
    assert FIRST_V1 in ids
    for e in body["estimates"]:
        assert e["p10"] <= e["start"] <= e["p90"]
        assert e["low_min"] <= e["wait_min"] <= e["high_min"]


async def test_checkin_start_end_flow_moves_the_visit(api: Api) -> None:
    await api.event({"type": "checkin", "appointment": FIRST_V1})
    visit = await (await api.client.get(f"/api/appointments/{FIRST_V1}", headers=api.h("reception"))).json()
    assert visit["status"] == "waiting"
    assert visit["estimate"] is not None
    api.clock.advance(minutes=12)
    await api.event({"type": "start", "appointment": FIRST_V1})
    api.clock.advance(minutes=15)
    await api.event({"type": "end", "appointment": FIRST_V1})
    visit = await (await api.client.get(f"/api/appointments/{FIRST_V1}", headers=api.h("reception"))).json()
    assert visit["status"] == "done"
    assert visit["estimate"] is None
    assert visit["started"].startswith("2026-03-02T08:02")


async def test_emergency_pushes_that_vets_queue_back(api: Api) -> None:
    async def starts() -> dict[str, str]:
        body = await (await api.client.get("/api/estimates", headers=api.h("reception"))).json()
        return {e["appointment"]: e["start"] for e in body["estimates"]}

    before = await starts()
    await api.event({"type": "emergency", "id": "e1", "vet": "v1", "expected_min": 60})
    after = await starts()
    v1 = [a for a in before if "-v1-" in a]
    v2 = [a for a in before if "-v2-" in a]
    assert all(after[a] > before[a] for a in v1[:3])
    assert [after[a] for a in v2[:3]] == [before[a] for a in v2[:3]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "fly"}, "type"),
        ({"type": "checkin"}, "appointment"),
        ({"type": "checkin", "appointment": FIRST_V1, "at": "yesterday"}, "at"),
        ({"type": "emergency", "id": "e9", "vet": "v1", "expected_min": -5}, "expected_min"),
        ({"type": "emergency", "id": "e9", "vet": "nobody"}, "vet"),
        ({"type": "walkin", "appointment": {"id": "w1"}}, "appointment.vet"),
        ({"type": "vet_late", "vet": "v1"}, "minutes"),
    ],
)
async def test_bad_event_gets_400_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    resp = await api.client.post("/api/events", json=body, headers=api.h("reception"))
    assert resp.status == 400
    assert (await resp.json())["field"] == field


async def test_malformed_json_is_a_400_on_body(api: Api) -> None:
    resp = await api.client.post("/api/events", data=b"{not json", headers=api.h("reception"))
    assert resp.status == 400
    assert (await resp.json())["field"] == "body"


async def test_unknown_appointment_is_404(api: Api) -> None:
    resp = await api.client.post("/api/events", json={"type": "checkin", "appointment": "nope"},
                                 headers=api.h("reception"))
    assert resp.status == 404
    assert (await api.client.get("/api/appointments/nope", headers=api.h("reception"))).status == 404


async def test_impossible_transitions_are_409_with_a_reason(api: Api) -> None:
    await api.event({"type": "checkin", "appointment": FIRST_V1})
    again = await api.client.post("/api/events", json={"type": "checkin", "appointment": FIRST_V1},
                                  headers=api.h("reception"))
    assert again.status == 409
    assert "already checked in" in (await again.json())["error"]
    await api.event({"type": "start", "appointment": FIRST_V1, "at": "2026-03-02T08:05:00-06:00"})
    early_end = await api.client.post(
        "/api/events", json={"type": "end", "appointment": FIRST_V1, "at": "2026-03-02T08:01:00-06:00"},
        headers=api.h("reception"))
    assert early_end.status == 409
    assert "before" in (await early_end.json())["error"]
    second = f"{DAY.isoformat()}-v2-0800"
    await api.event({"type": "noshow", "appointment": second})
    after_noshow = await api.client.post("/api/events", json={"type": "checkin", "appointment": second},
                                         headers=api.h("reception"))
    assert after_noshow.status == 409
    assert "no-show" in (await after_noshow.json())["error"]


async def test_time_without_offset_is_read_in_clinic_timezone(api: Api) -> None:
    await api.event({"type": "checkin", "appointment": FIRST_V1, "at": "2026-03-02T07:55:00"})
    visit = await (await api.client.get(f"/api/appointments/{FIRST_V1}", headers=api.h("pms"))).json()
    assert visit["arrived"] == "2026-03-02T07:55:00-06:00"


async def test_schedule_import_is_idempotent_and_moves_bookings(api: Api) -> None:
    doc = {"vets": [{"id": "v9", "name": "Dr. New"}],
           "appointment_types": [{"id": "dental", "name": "Dental", "booked_min": 40}],
           "appointments": [{"id": "x1", "vet": "v9", "type": "dental", "scheduled": "2026-03-02T15:00:00-06:00"}]}
    for _ in range(2):
        resp = await api.client.post("/api/schedule", json=doc, headers=api.h("pms"))
        assert resp.status == 200
    doc["appointments"][0]["scheduled"] = "2026-03-02T16:00:00-06:00"
    await api.client.post("/api/schedule", json=doc, headers=api.h("pms"))
    visit = await (await api.client.get("/api/appointments/x1", headers=api.h("pms"))).json()
    assert visit["scheduled"] == "2026-03-02T16:00:00-06:00"
    assert visit["booked_min"] == 40


async def test_schedule_re_push_never_rewrites_what_happened(api: Api) -> None:
    await api.event({"type": "checkin", "appointment": FIRST_V1})
    doc = {"appointments": [{"id": FIRST_V1, "vet": "v2", "scheduled": "2026-03-02T11:00:00-06:00",
                             "booked_min": 15}]}
    await api.client.post("/api/schedule", json=doc, headers=api.h("pms"))
    visit = await (await api.client.get(f"/api/appointments/{FIRST_V1}", headers=api.h("pms"))).json()
    assert visit["vet"] == "v1"
    assert visit["status"] == "waiting"


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ([], "body"),
        ({"vets": [{"id": "v1"}]}, "vets[0].name"),
        ({"clients": [{"id": "c1", "name": "A", "mobile": "12"}]}, "clients[0].mobile"),
        ({"appointments": [{"id": "z", "vet": "v1", "scheduled": "soon"}]}, "appointments[0].scheduled"),
        ({"appointments": [{"id": "z", "vet": "v1", "type": "nope", "scheduled": "2026-03-02T09:00:00"}]},
         "appointments[0].type"),
    ],
)
async def test_bad_schedule_is_400_and_changes_nothing(api: Api, doc: Any, field: str) -> None:
    resp = await api.client.post("/api/schedule", json=doc, headers=api.h("pms"))
    assert resp.status == 400
    assert (await resp.json())["field"] == field


async def test_accepted_event_survives_a_restart(api: Api, clock: Any) -> None:
    await api.event({"type": "checkin", "appointment": FIRST_V1})
    config = Config(db_path=str(api.db), clock=clock)
    app = create_app(config)
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(app)) as other:
        visit = await (await other.get(f"/api/appointments/{FIRST_V1}", headers=api.h("pms"))).json()
    assert visit["status"] == "waiting"


# The server refuses before reading the whole body, so the test client's unsent payload warns.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_body_over_the_limit_is_413(api: Api) -> None:
    resp = await api.client.post("/api/schedule", data=b"x" * (2 * 1024 * 1024),
                                 headers={**api.h("pms"), "Content-Type": "application/json"})
    assert resp.status == 413


async def test_running_late_delays_that_vet_only(api: Api) -> None:
    async def first_start(vet: str) -> str:
        body = await (await api.client.get("/api/estimates", headers=api.h("reception"))).json()
        return min(e["start"] for e in body["estimates"] if e["vet"] == vet)

    v1, v2 = await first_start("v1"), await first_start("v2")
    await api.event({"type": "vet_late", "vet": "v1", "minutes": 40})
    assert await first_start("v1") >= (api.clock.now() + timedelta(minutes=40)).astimezone(
        __import__("zoneinfo").ZoneInfo("America/Chicago")).isoformat()[:16]
    assert await first_start("v1") > v1
    assert await first_start("v2") == v2


def test_create_app_does_no_io_at_build_time(tmp_path: Any) -> None:
    app = create_app(Config(db_path=str(tmp_path / "never.db")))
    assert isinstance(app, web.Application)
    assert not (tmp_path / "never.db").exists()


async def test_the_pms_hears_every_booking_change_once_in_order(api: Api) -> None:
    second = f"{DAY.isoformat()}-v1-0820"
    await api.event({"type": "checkin", "appointment": FIRST_V1})  # not a booking change
    await api.event({"type": "noshow", "appointment": second})
    await api.event({"type": "walkin", "appointment": {"id": "w1", "vet": "v2", "pet": "Rex"}})
    resp = await api.client.get("/api/changes", headers=api.h("pms"))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [(c["type"], c["appointment"]) for c in body["changes"]] == [("noshow", second), ("walkin", "w1")]
    assert body["changes"][1]["vet"] == "v2" and body["changes"][0]["actor"].startswith("token:")
    # Page by page with `next`, and nothing twice.
    first = await (await api.client.get("/api/changes?limit=1", headers=api.h("pms"))).json()
    assert [c["appointment"] for c in first["changes"]] == [second]
    rest = await (await api.client.get(f"/api/changes?since={first['next']}", headers=api.h("pms"))).json()
    assert [c["appointment"] for c in rest["changes"]] == ["w1"]
    done = await (await api.client.get(f"/api/changes?since={body['next']}", headers=api.h("pms"))).json()
    assert done == {"changes": [], "next": body["next"]}
    bad = await api.client.get("/api/changes?since=-1", headers=api.h("pms"))
    assert bad.status == 400 and (await bad.json())["field"] == "since"
    bad = await api.client.get("/api/changes?sinse=3", headers=api.h("pms"))
    assert bad.status == 400 and (await bad.json())["field"] == "sinse"


async def test_schedule_import_takes_a_vets_spanish_title_and_refuses_others(api: Api) -> None:
    h = api.h("pms")
    doc = {"vets": [{"id": "v9", "name": "Dr. Eva Sol", "title": "Doctora"}]}
    ok = await api.client.post("/api/schedule", json=doc, headers=h)
    assert ok.status == 200, await ok.text()
    assert api.client.app is not None
    assert api.client.app[RUNTIME].clinic.settings["vet_titles"]["v9"] == "Dra."
    bad = await api.client.post("/api/schedule", json={"vets": [{"id": "v8", "name": "Dr. X", "title": "Prof."}]},
                                headers=h)
    assert bad.status == 400 and (await bad.json())["field"] == "vets[0].title"
