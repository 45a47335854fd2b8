"""The kiosk's routes on the server: minimal answers, idempotent check-ins, only your own visits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from server.store import open_store
from tests import dbq
from tests.conftest import Api

HOUSEHOLD = "(312) 555-0102"  # James Carter: Max and Bella
NOBODY = "312-555-0199"


async def _post(api: Api, path: str, body: dict[str, Any], role: str = "kiosk") -> tuple[int, Any]:
    resp = await api.client.post(path, json=body, headers=api.h(role))
    return resp.status, await resp.json()


async def _count(api: Api, query: str) -> int:
    return int(await dbq.value(api.db, query))


async def test_lookup_shows_pets_times_and_vets_only(api: Api) -> None:
    status, body = await _post(api, "/api/kiosk/lookup", {"phone": HOUSEHOLD})
    assert status == 200
    assert {a["pet"] for a in body["appointments"]} == {"Max", "Bella"}
    for a in body["appointments"]:
        assert set(a) == {"id", "pet", "sex", "species", "vet", "scheduled", "checked_in"}
    assert "Carter" not in str(body) and "0102" not in str(body)


async def test_unknown_number_answers_in_the_same_shape(api: Api) -> None:
    _, known = await _post(api, "/api/kiosk/lookup", {"phone": HOUSEHOLD})
    status, unknown = await _post(api, "/api/kiosk/lookup", {"phone": NOBODY})
    assert status == 200
    assert set(unknown) == set(known) and unknown["appointments"] == [] and unknown["sms_consent"] is False


async def test_typo_number_is_a_400_on_phone(api: Api) -> None:
    status, body = await _post(api, "/api/kiosk/lookup", {"phone": "555"})
    assert status == 400 and body["field"] == "phone"


async def test_checkin_twice_with_one_key_checks_in_once(api: Api) -> None:
    _, found = await _post(api, "/api/kiosk/lookup", {"phone": HOUSEHOLD})
    ids = [a["id"] for a in found["appointments"]]
    body = {"phone": HOUSEHOLD, "appointments": ids, "sms_consent": True, "idempotency_key": "kiosk-key-0001"}
    first = await _post(api, "/api/kiosk/checkin", body)
    again = await _post(api, "/api/kiosk/checkin", body)
    assert first[0] == again[0] == 200
    assert [v["appointment"] for v in first[1]["visits"]] == ids
    for v in first[1]["visits"]:
        assert v["status"] == "waiting" and v["estimate"]["low_min"] <= v["estimate"]["high_min"]
        assert v["status_url"].startswith("http://clinic.test/s/")
    assert await _count(api, "SELECT COUNT(*) FROM events WHERE type = 'checkin'") == len(ids)


async def test_a_kiosk_cannot_check_in_another_numbers_visit(api: Api) -> None:
    _, found = await _post(api, "/api/kiosk/lookup", {"phone": HOUSEHOLD})
    other = found["appointments"][0]["id"]
    status, body = await _post(api, "/api/kiosk/checkin", {"phone": "312-555-0101", "appointments": [other],
                                                           "idempotency_key": "kiosk-key-0002"})
    assert status == 404 and body["field"] == "appointments"
    assert await _count(api, "SELECT COUNT(*) FROM events WHERE type = 'checkin'") == 0


async def test_walkin_joins_the_queue_with_an_estimate(api: Api) -> None:
    body = {"name": "Ana Gomez", "pet": "Rex", "species": "dog", "reason": "injury",
            "idempotency_key": "kiosk-walkin-01"}
    status, answer = await _post(api, "/api/kiosk/walkin", body)
    assert status == 200
    [visit] = answer["visits"]
    assert visit["kind"] == "walkin" and visit["pet"] == "Rex" and visit["estimate"] is not None
    await _post(api, "/api/kiosk/walkin", body)  # re-delivered by an offline kiosk: not doubled
    assert await _count(api, "SELECT COUNT(*) FROM appointments WHERE kind = 'walkin'") == 1
    # The new client and pet are in the log, in the walk-in's own event, with the kiosk as actor
    # (ids, pet and species: the client's name is not copied into the log).
    store = await open_store(str(api.db))
    try:
        async with store.read() as q:
            [walkin] = [e for e in await q.events_since(0) if e.type == "walkin"]
            contact = await q.visit_contact(visit["appointment"])
    finally:
        await store.close()
    assert walkin.actor.startswith("token:") and walkin.data["pet"] == "Rex" and walkin.data["species"] == "dog"
    assert contact is not None and walkin.data["client"] == contact.client_id and contact.client == "Ana Gomez"
    assert "Ana Gomez" not in str(walkin.data)


async def test_urgent_help_reaches_the_log_once(api: Api) -> None:
    for _ in range(2):
        status, body = await _post(api, "/api/kiosk/urgent", {"idempotency_key": "kiosk-urgent-1", "note": "bleeding"})
        assert status == 200 and body == {"ok": True}
    assert await _count(api, "SELECT COUNT(*) FROM events WHERE type = 'urgent'") == 1


async def test_a_kiosk_reads_only_the_visits_it_checked_in(api: Api) -> None:
    _, found = await _post(api, "/api/kiosk/lookup", {"phone": HOUSEHOLD})
    vid = found["appointments"][0]["id"]
    await _post(api, "/api/kiosk/checkin", {"phone": HOUSEHOLD, "appointments": [vid],
                                            "idempotency_key": "kiosk-key-0003"})
    mine = await api.client.get(f"/api/kiosk/visits/{vid}", headers=api.h("kiosk"))
    assert mine.status == 200
    store = await open_store(str(api.db))
    async with store.transaction() as conn:
        other_kiosk = await conn.create_token("kiosk", "lobby-2", datetime.now(UTC))
    await store.close()
    theirs = await api.client.get(f"/api/kiosk/visits/{vid}", headers={"Authorization": f"Bearer {other_kiosk}"})
    assert theirs.status == 404
