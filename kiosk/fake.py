"""An in-memory clinic for snapshots, demos and benchmarks (no server, fixed answers).

Real tests run against the real server; this only makes pictures and timings repeatable.
"""

from __future__ import annotations

from typing import Any

from kiosk.api import JSON, ApiError, Kind, ServerUnreachable

NOW = "2025-03-14T10:00:00-07:00"
EST = {"start": "2025-03-14T10:15:00-07:00", "p10": "2025-03-14T10:10:00-07:00",
       "p90": "2025-03-14T10:25:00-07:00", "wait_min": 15, "low_min": 10, "high_min": 25}
BOOK: dict[str, list[dict[str, Any]]] = {
    "+14155550132": [
        {"id": "a1", "pet": "Bella", "sex": "female", "species": "dog", "vet": "Dr. Ruiz",
         "scheduled": "2025-03-14T10:10:00-07:00", "checked_in": False},
        {"id": "a2", "pet": "Max", "sex": "male", "species": "cat", "vet": "Dr. Kim",
         "scheduled": "2025-03-14T10:20:00-07:00", "checked_in": False},
    ],
    "+14155550177": [
        {"id": "a3", "pet": "Bella", "sex": "female", "species": "dog", "vet": "Dr. Ruiz",
         "scheduled": "2025-03-14T10:10:00-07:00", "checked_in": False},
    ],
}


class FakeClinic:
    def __init__(self, offline: bool = False) -> None:
        self.offline = offline
        self.sent: list[tuple[Kind, JSON]] = []

    def _check(self) -> None:
        if self.offline:
            raise ServerUnreachable("fake clinic is offline")

    async def lookup(self, phone: str) -> JSON:
        self._check()
        return {"now": NOW, "appointments": BOOK.get(phone, []), "sms_consent": phone == "+14155550177"}

    def _visit(self, a: dict[str, Any]) -> JSON:
        return {"appointment": a["id"], "kind": "appointment", "pet": a["pet"], "sex": a["sex"], "vet": a["vet"],
                "status": "waiting", "scheduled": a["scheduled"], "estimate": EST,
                "status_url": f"https://clinic.example/s/{a['id']}-demo-token"}

    async def submit(self, kind: Kind, payload: JSON) -> JSON:
        self._check()
        self.sent.append((kind, payload))
        if kind == "urgent":
            return {"ok": True}
        if kind == "walkin":
            return {"now": NOW, "visits": [{
                "appointment": "w-1", "kind": "walkin", "pet": payload["pet"], "sex": "unknown", "vet": "Dr. Kim",
                "status": "waiting", "scheduled": None, "estimate": {**EST, "wait_min": 40, "low_min": 25,
                                                                     "high_min": 70},
                "status_url": "https://clinic.example/s/w-1-demo-token"}]}
        mine = {a["id"]: a for a in BOOK.get(payload["phone"], [])}
        if not payload.get("appointments"):  # by phone alone: the server answers with a count only
            return {"now": NOW, "visits": [], "checked_in": len(mine)}
        wanted = payload["appointments"]
        if any(w not in mine for w in wanted):
            raise ApiError(404, "no such appointment", "appointments")
        return {"now": NOW, "visits": [self._visit(mine[w]) for w in wanted]}

    async def visit(self, appointment: str) -> JSON:
        self._check()
        for appts in BOOK.values():
            for a in appts:
                if a["id"] == appointment:
                    return {"now": NOW, "visits": [self._visit(a)]}
        raise ApiError(404, "unknown visit", "id")

    async def clinic(self) -> JSON:
        self._check()
        return {"name": "Riverside Animal Clinic"}

    async def close(self) -> None:
        return None
