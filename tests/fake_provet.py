"""A small fake of Provet Cloud's REST API on loopback, following its documented protocol
(docs/CONNECTORS.md): `/<provet_id>/api/0.1/` resources linked by URL, paged
`{"count", "num_pages", "next", "previous", "results"}` lists with `field__gte` / `field__in`
filters, the OAuth2 token endpoint (form + HTTP Basic) or `Authorization: Token ...`, 429 with
Retry-After, and consultations created by POST (an admitted consultation is the arrival).
`send_webhook(url, appointment_id)` posts what Provet posts: a form with the changed object's id.

    async with FakeProvet(page_size=2) as pv:    # pv.base_url -> http://127.0.0.1:PORT/4/api/0.1
        pv.add_appointment(301, start, end, user=7, client=9, patient=55)
        pv.fail_next(3, "500")
"""

from __future__ import annotations

import base64
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

PROVET_ID = "4"
API_TOKEN = "provet-api-token-0123456789-never-logged"
CLIENT_ID = "provet-client"
CLIENT_SECRET = "provet-secret-never-logged"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_filter_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%d %H:%M%z")


@dataclass
class FakeProvet:
    page_size: int = 1000
    loop_pages: bool = False
    foreign_next: bool = False
    host: str = ""
    appointments: dict[int, dict[str, Any]] = field(default_factory=dict)
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    clients: dict[int, dict[str, Any]] = field(default_factory=dict)
    patients: dict[int, dict[str, Any]] = field(default_factory=dict)
    reasons: dict[int, dict[str, Any]] = field(default_factory=dict)
    consultations: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    faults: list[tuple[str, str | None]] = field(default_factory=list)
    tokens_issued: int = 0
    _tokens: set[str] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(900))
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"{self.host}/{PROVET_ID}/api/0.1"

    def url(self, kind: str, rid: int) -> str:
        return f"{self.base_url}/{kind}/{rid}/"

    # -- data ------------------------------------------------------------------------------

    def add_user(self, uid: int, first: str, last: str) -> None:
        self.users[uid] = {"id": uid, "url": self.url("user", uid), "first_name": first, "last_name": last,
                           "title": "Dr."}

    def add_client(self, cid: int, first: str, last: str, mobile: str | None) -> None:
        numbers = [{"type_code": 1, "phone_number": mobile}] if mobile else []
        self.clients[cid] = {"id": cid, "url": self.url("client", cid), "firstname": first, "lastname": last,
                             "phone_numbers": numbers}

    def add_patient(self, pid: int, name: str, client: int, gender: str = "Female") -> None:
        self.patients[pid] = {"id": pid, "url": self.url("patient", pid), "client": self.url("client", client),
                              "name": name, "species": "Dog (Canine - Domestic)", "gender": gender}

    def add_appointment(self, aid: int, start: datetime, end: datetime, *, user: int = 7, client: int | None = None,
                        patient: int | None = None, reason: int | None = None, department: int = 1) -> None:
        self.appointments[aid] = {
            "id": aid, "url": self.url("appointment", aid), "start": _iso(start), "end": _iso(end),
            "department": self.url("department", department), "user": self.url("user", user),
            "client": self.url("client", client) if client else None,
            "patients": [self.url("patient", patient)] if patient else [],
            "reason": self.url("reason", reason) if reason else None, "title": "Check-up",
            "complaint": "Annual check", "type": 1, "consultation": None}

    def fail_next(self, n: int, kind: str, path: str | None = None) -> None:
        self.faults.extend([(kind, path)] * n)

    def expire_tokens(self) -> None:
        self._tokens.clear()

    # -- server ----------------------------------------------------------------------------

    async def __aenter__(self) -> FakeProvet:
        app = web.Application()
        base = f"/{PROVET_ID}/api/0.1"
        app.router.add_post(f"/{PROVET_ID}/oauth2/token/", self._token)
        for kind in ("appointment", "user", "client", "patient", "reason"):
            app.router.add_get(f"{base}/{kind}/", self._lister(kind))
        app.router.add_get(f"{base}/appointment/{{id}}/", self._appointment)
        app.router.add_post(f"{base}/consultation/", self._consultation)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.host = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        header = request.headers.get("Authorization", "")
        basic = base64.b64decode(header.removeprefix("Basic ")).decode() if header.startswith("Basic ") else ""
        if form.get("grant_type") != "client_credentials" or basic != f"{CLIENT_ID}:{CLIENT_SECRET}":
            return web.json_response({"error": "invalid_client"}, status=401)
        token = f"ptok-{next(self._ids)}"
        self._tokens.add(token)
        self.tokens_issued += 1
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": 36000,
                                  "scope": "read write"})

    async def _gate(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.method, request.path, dict(request.query)))
        auth = request.headers.get("Authorization", "")
        if not (auth == f"Token {API_TOKEN}" or auth.removeprefix("Bearer ") in self._tokens):
            return web.json_response({"detail": "Authentication credentials were not provided."}, status=401)
        fault = None
        for i, (kind, path) in enumerate(self.faults):
            if path is None or path == request.path:
                fault = kind
                del self.faults[i]
                break
        if fault == "429":
            return web.json_response({"detail": "Request was throttled. Expected available in 1 second."},
                                     status=429, headers={"Retry-After": "1"})
        if fault == "500":
            return web.Response(status=502, text="<html>Bad gateway</html>")
        if fault == "badjson":
            return web.Response(text='{"count": 3, "results": [', content_type="application/json")
        return None

    def _lister(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            refused = await self._gate(request)
            if refused is not None:
                return refused
            records = list(getattr(self, kind + "s").values())
            q = request.query
            try:
                if "id__in" in q:
                    wanted = {int(x) for x in q["id__in"].strip("[]").split(",") if x}
                    records = [r for r in records if r["id"] in wanted]
                if "start__gte" in q:
                    low = _parse_filter_time(q["start__gte"])
                    records = [r for r in records if datetime.fromisoformat(r["start"]) >= low]
                if "start__lt" in q:
                    high = _parse_filter_time(q["start__lt"])
                    records = [r for r in records if datetime.fromisoformat(r["start"]) < high]
                if "department__in" in q:
                    depts = {self.url("department", int(x)) for x in q["department__in"].strip("[]").split(",")}
                    records = [r for r in records if r.get("department") in depts]
                page = int(q.get("page", "1"))
            except ValueError:
                return web.json_response({"detail": "Invalid filter."}, status=400)
            records.sort(key=lambda r: r["id"])
            pages = max((len(records) + self.page_size - 1) // self.page_size, 1)
            chunk = records[(page - 1) * self.page_size: page * self.page_size]
            nxt = None
            if page < pages:
                query = {k: v for k, v in q.items() if k != "page"}
                host = "http://evil.example" if self.foreign_next else self.host
                nxt = f"{host}{request.path}?{urlencode({**query, 'page': 1 if self.loop_pages else page + 1})}"
            return web.json_response({"count": len(records), "num_pages": pages, "next": nxt,
                                      "previous": None, "results": chunk})
        return handler

    async def _appointment(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        aid = int(request.match_info["id"])
        if aid not in self.appointments:
            return web.json_response({"detail": "Not found."}, status=404)
        return web.json_response(self.appointments[aid])

    async def _consultation(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        body = await request.json()
        if not body.get("client") and not body.get("patients"):
            return web.json_response({"client": ["This field is required."]}, status=400)
        cid = next(self._ids)
        consultation = {**body, "id": cid, "url": f"{self.base_url}/consultation/{cid}/", "status": 0,
                        "admitted_time": _iso(datetime.now(UTC))}
        self.consultations.append(consultation)
        appointment = str(body.get("appointment", "")).rstrip("/").rsplit("/", 1)[-1]
        if appointment.isdigit() and int(appointment) in self.appointments:
            self.appointments[int(appointment)]["consultation"] = consultation["url"]
        return web.json_response(consultation, status=201)


async def send_webhook(url: str, form: dict[str, str]) -> int:
    """POST a webhook as Provet does (form-encoded, the changed object's id); the status we got."""
    async with aiohttp.ClientSession() as session, session.post(url, data=form) as resp:
        await resp.read()
        return resp.status


def monotonic() -> float:
    return time.monotonic()
