"""A small fake of ezyVet's API on loopback, following its documented protocol (docs/CONNECTORS.md):
the client-credentials token endpoint, paged `{"meta", "items"}` lists with JSON comparator
filters (`modified_at={"gt": ...}`, `start_at={"gte": ..., "lt": ...}`, `id={"in": [...]}`),
401 `{"messages": [...]}` bodies, 429 with Retry-After, and status write-backs by PATCH.

    async with FakeEzyVet() as ev:               # ev.base_url -> http://127.0.0.1:PORT
        ev.add_appointment("101", start, minutes=20, vet="7", animal="55", contact="9")
        ev.fail_next(2, "429")                   # the next two API requests answer 429
        ev.expire_tokens()                       # every token issued so far is now refused

Faults, one per coming request (token requests excepted): "429" (Retry-After: 0), "500",
"badjson", "timeout" (answers after `slow_seconds`). `loop_pages` makes every page beyond the
first repeat page 1 while claiming more pages (a server paging for ever).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

PARTNER_ID = "partner-123"
CLIENT_ID = "client-abc"
CLIENT_SECRET = "s3cret-client-value-never-logged"


@dataclass
class FakeEzyVet:
    per_minute: int = 1000  # the fake's own rate limit per endpoint (60 s window)
    token_ttl: int = 12 * 3600
    slow_seconds: float = 2.0
    loop_pages: bool = False
    base_url: str = ""
    appointments: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=lambda: {
        "1": "Booked", "2": "In Waiting Room", "3": "In Consultation", "4": "Cancelled", "5": "Did Not Arrive"})
    types: dict[str, str] = field(default_factory=lambda: {"30": "Vaccination", "31": "Consultation"})
    resources: dict[str, str] = field(default_factory=lambda: {"7": "Dr Ana Ruiz", "8": "Dr Ben Okafor"})
    animals: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    token_bodies: list[dict[str, Any]] = field(default_factory=list)
    faults: list[tuple[str, str | None]] = field(default_factory=list)  # (kind, only this path)
    _tokens: dict[str, float] = field(default_factory=dict)
    _sent: dict[str, list[float]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _clock: int = 1_800_000_000  # the fake's modified_at clock: its own, not the test's
    _runner: web.AppRunner | None = None

    # -- data ------------------------------------------------------------------------------

    def tick(self) -> int:
        self._clock += 1
        return self._clock

    def add_client(self, contact: str, first: str, last: str, mobile: str | None) -> None:
        self.contacts[contact] = {"id": contact, "first_name": first, "last_name": last, "active": "1"}
        if mobile is not None:
            did = str(next(self._ids))
            self.details[did] = {"id": did, "contact_id": contact, "contact_detail_type_id": "2", "value": mobile}

    def add_pet(self, animal: str, name: str, contact: str) -> None:
        self.animals[animal] = {"id": animal, "name": name, "contact_id": contact, "active": "1"}

    def add_appointment(self, aid: str, start: datetime, *, minutes: float = 20, vet: str = "7", type_id: str = "30",
                        animal: str | None = None, contact: str | None = None, status: str = "1") -> None:
        self.appointments[aid] = {
            "id": aid, "active": True, "start_at": int(start.timestamp()), "duration": int(minutes * 60),
            "type_id": type_id, "status_id": status, "animal_id": animal, "contact_id": contact,
            "resources": [{"id": vet}], "description": "", "created_at": self.tick(), "modified_at": self.tick()}

    def change(self, aid: str, **fields: Any) -> None:
        self.appointments[aid].update(fields, modified_at=self.tick())

    def fail_next(self, n: int, kind: str, path: str | None = None) -> None:
        """The next `n` requests (to `path` only, if given) meet fault `kind`."""
        self.faults.extend([(kind, path)] * n)

    def expire_tokens(self) -> None:
        self._tokens.clear()

    def api_requests(self, path: str | None = None) -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.requests if path is None or r[1] == path]

    # -- server ----------------------------------------------------------------------------

    async def __aenter__(self) -> FakeEzyVet:
        app = web.Application()
        app.router.add_post("/v1/oauth/access_token", self._token)
        for path, source in (("/v2/appointment", "appointments"), ("/v2/appointmentstatus", "statuses"),
                             ("/v2/appointmenttype", "types"), ("/v2/resource", "resources"),
                             ("/v1/animal", "animals"), ("/v1/contact", "contacts"),
                             ("/v1/contactdetail", "details")):
            app.router.add_get(path, self._lister(path, source))
        app.router.add_patch("/v2/appointment/{id}", self._patch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"messages": [{"level": "error", "type": "InvalidRequestException",
                                                    "text": "expected JSON", "fields": []}]}, status=400)
        self.token_bodies.append(body)
        if (body.get("client_id"), body.get("client_secret"), body.get("partner_id"), body.get("grant_type")) != (
                CLIENT_ID, CLIENT_SECRET, PARTNER_ID, "client_credentials"):
            return web.json_response({"messages": [{"level": "error", "type": "InvalidClientException",
                                                    "text": "Client authentication failed", "fields": []}]},
                                     status=401)
        token = f"tok-{next(self._ids)}"
        self._tokens[token] = time.monotonic() + self.token_ttl
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl})

    async def _gate(self, request: web.Request, endpoint: str) -> web.Response | None:
        """Auth, rate limit and the queued faults, as every API call meets them."""
        self.requests.append((request.method, request.path, dict(request.query)))
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if token not in self._tokens or self._tokens[token] < time.monotonic():
            return web.json_response({"messages": [{
                "level": "error", "type": "InvalidRequestException",
                "text": "The request is missing a required parameter, includes an invalid parameter value, "
                        "includes a parameter more than once, or is otherwise malformed. Check the \"access token\" "
                        "parameter.", "fields": []}]}, status=401)
        now = time.monotonic()
        sent = [t for t in self._sent.get(endpoint, []) if now - t < 60]
        if len(sent) >= self.per_minute:
            self._sent[endpoint] = sent
            return web.json_response({"messages": [{"level": "error", "type": "TooManyRequests",
                                                    "text": "Too many requests", "fields": []}]}, status=429,
                                     headers={"Retry-After": "1"})
        self._sent[endpoint] = [*sent, now]
        fault = None
        for i, (kind, path) in enumerate(self.faults):
            if path is None or path == request.path:
                fault = kind
                del self.faults[i]
                break
        if fault is not None:
            if fault == "429":
                return web.json_response({"messages": [{"level": "error", "type": "TooManyRequests",
                                                        "text": "Too many requests", "fields": []}]}, status=429,
                                         headers={"Retry-After": "0"})
            if fault == "500":
                return web.json_response({"id": "error_x", "status": 500, "message": "Internal error"}, status=500)
            if fault == "badjson":
                return web.Response(text='{"meta": {"items_total": 3}, "items": [', content_type="application/json")
            if fault == "timeout":
                await asyncio.sleep(self.slow_seconds)
        return None

    def _lister(self, path: str, source: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            refused = await self._gate(request, path)
            if refused is not None:
                return refused
            records = self._records(source)
            try:
                for key, raw in request.query.items():
                    if key in ("limit", "page"):
                        continue
                    records = [r for r in records if _matches(r.get(key), json.loads(raw))]
                limit = min(int(request.query.get("limit", "10")), 200)
                page = max(int(request.query.get("page", "1")), 1)
            except (ValueError, TypeError):
                return web.json_response({"messages": [{"level": "error", "type": "InvalidRequestException",
                                                        "text": "bad filter", "fields": []}]}, status=400)
            records.sort(key=lambda r: int(r["id"]))
            pages = max((len(records) + limit - 1) // limit, 1)
            shown = page if not (self.loop_pages and page > 1) else 1
            chunk = records[(shown - 1) * limit: shown * limit]
            name = path.rsplit("/", 1)[-1]
            meta = {"items_page": str(page), "items_page_total": str(pages if not self.loop_pages else page + 1),
                    "items_page_size": str(limit), "items_total": str(len(records)), "transaction_id": "t"}
            return web.json_response({"meta": meta, "items": [{name: r} for r in chunk]})
        return handler

    def _records(self, source: str) -> list[dict[str, Any]]:
        if source in ("statuses", "types", "resources"):
            return [{"id": k, "name": v, "active": "1"} for k, v in getattr(self, source).items()]
        return [dict(r) for r in getattr(self, source).values()]

    async def _patch(self, request: web.Request) -> web.Response:
        refused = await self._gate(request, "/v2/appointment:write")
        if refused is not None:
            return refused
        aid = request.match_info["id"]
        if aid not in self.appointments:
            return web.json_response({"messages": [{"level": "error", "type": "NotFound",
                                                    "text": "Appointment not found", "fields": []}]}, status=404)
        body = await request.json()
        self.writes.append((aid, body))
        self.change(aid, **{k: v for k, v in body.items() if k in ("status_id",)})
        return web.json_response({"meta": {}, "items": [{"appointment": self.appointments[aid]}]})


def _matches(value: Any, spec: Any) -> bool:
    if not isinstance(spec, dict):
        return str(value) == str(spec)
    for op, want in spec.items():
        if op == "in":
            if str(value) not in {str(w) for w in want}:
                return False
            continue
        if op == "eq":
            if str(value) != str(want):
                return False
            continue
        try:
            v, w = float(value), float(want)
        except (TypeError, ValueError):
            return False
        if (op == "gt" and not v > w) or (op == "gte" and not v >= w) or (op == "lt" and not v < w) or (
                op == "lte" and not v <= w):
            return False
    return True
