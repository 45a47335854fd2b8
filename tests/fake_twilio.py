"""A small fake of Twilio's Messages API on loopback, for the notifier's tests and benchmark.

    async with FakeTwilio() as twilio:          # twilio.base_url -> http://127.0.0.1:PORT
        twilio.fail_next(2, "429")              # the next two creates answer 429
        ...
        twilio.accepted                          # messages it created, in order

Creates (POST .../Messages.json, form-encoded, basic auth), fetches (GET
.../Messages/{sid}.json) and lists (GET .../Messages.json, To / From / DateSent filters,
PageSize, newest first) like Twilio. Faults, one per coming create: "429", "500", "timeout"
(answers after `slow_seconds`), "21610" (400, unsubscribed recipient), and the two nasty
ones where Twilio created the message but we never hear so: "accept_then_500",
"accept_then_timeout". `send_status(sid, status)` posts a status callback signed by the
official twilio package, as Twilio would.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
from aiohttp import web

from notifier.store import Transaction
from server.store import Store, open_store

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"


@dataclass
class FakeTwilio:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    slow_seconds: float = 2.0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    faults: list[str] = field(default_factory=list)
    fail_lookups: bool = False
    create_delay: float = 0.0  # seconds each create takes before it is answered (texts in flight)
    base_url: str = ""
    _runner: web.AppRunner | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, n: int, kind: str) -> None:
        self.faults.extend([kind] * n)

    def bodies_to(self, to: str) -> list[str]:
        return [m["body"] for m in self.accepted if m["to"] == to]

    async def __aenter__(self) -> FakeTwilio:
        app = web.Application()
        base = f"/2010-04-01/Accounts/{self.account_sid}"
        app.router.add_post(f"{base}/Messages.json", self._create)
        app.router.add_get(f"{base}/Messages.json", self._list)
        app.router.add_get(f"{base}/Messages/{{sid}}.json", self._fetch)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return scheme == "Basic" and login == self.account_sid and password == self.auth_token

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return web.json_response({"code": code, "message": message, "status": status}, status=status)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        form = await request.post()
        fault = self.faults.pop(0) if self.faults else None
        if fault == "429":
            return web.json_response({"code": 20429, "message": "Too Many Requests", "status": 429},
                                     status=429, headers={"Retry-After": "0"})
        if fault == "500":
            return self._error(500, 20500, "Internal Server Error")
        if fault == "timeout":
            await asyncio.sleep(self.slow_seconds)
            return self._error(500, 20500, "too late")
        if fault == "21610":
            return self._error(400, 21610, "Attempt to send to unsubscribed recipient")
        if self.create_delay:
            await asyncio.sleep(self.create_delay)
        to, body = str(form.get("To", "")), str(form.get("Body", ""))
        if not to or not body or not (form.get("From") or form.get("MessagingServiceSid")):
            return self._error(400, 21604, "A 'To' phone number, a 'Body' and a sender are required.")
        now = datetime.now(UTC)
        msg = {
            "sid": f"SM{next(self._ids):032x}", "account_sid": self.account_sid, "to": to,
            "from": form.get("From"), "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": body, "status": "queued", "date_created": format_datetime(now),
            "date_sent": None, "status_callback": form.get("StatusCallback"),
            "error_code": None, "num_segments": "1",
        }
        self.accepted.append(msg)
        if fault == "accept_then_500":
            return self._error(500, 20500, "Internal Server Error")
        if fault == "accept_then_timeout":
            await asyncio.sleep(self.slow_seconds)
        return web.json_response(msg, status=201)

    async def _fetch(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        for m in self.accepted:
            if m["sid"] == request.match_info["sid"]:
                return web.json_response(m)
        return self._error(404, 20404, "not found")

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        if self.fail_lookups:
            return self._error(503, 20503, "Service Unavailable")
        q = request.query
        out = list(reversed(self.accepted))
        if "To" in q:
            out = [m for m in out if m["to"] == q["To"]]
        if "From" in q:
            out = [m for m in out if m["from"] == q["From"]]
        if "DateSent" in q:  # Twilio: only messages already sent have a DateSent
            out = [m for m in out if m["date_sent"] and m["date_sent"].startswith(q["DateSent"])]
        size = int(q.get("PageSize", "50"))
        return web.json_response({"messages": out[:size], "page_size": size, "next_page_uri": None})

    async def send_status(self, sid: str, status: str, error_code: str | None = None,
                          url: str | None = None, public_url: str | None = None) -> int:
        """Post a status callback for `sid` as Twilio does, signed by the official package.

        `url` is where to post (the test server); `public_url` what Twilio believes it
        called (the StatusCallback as given), which the signature covers."""
        from twilio.request_validator import RequestValidator

        msg = next(m for m in self.accepted if m["sid"] == sid)
        msg["status"] = status
        if status in ("sent", "delivered"):
            msg["date_sent"] = format_datetime(datetime.now(UTC))
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": self.account_sid,
                  "To": msg["to"], "SmsSid": sid, "SmsStatus": status}
        if error_code:
            params["ErrorCode"] = error_code
        signed_url = public_url or msg["status_callback"]
        sig = RequestValidator(self.auth_token).compute_signature(signed_url, params)
        async with aiohttp.ClientSession() as s, s.post(url or signed_url, data=params,
                                                        headers={"X-Twilio-Signature": sig}) as r:
            return r.status




class OutboxDb:
    """The clinic's store (either backend, all migrations) used outside any explicit transaction:
    each operation called on it runs in a transaction of its own and commits, as the notifier's
    functions see a `Tx`. `transaction` is the store's, for a Worker, the webhooks or a test's
    own all-or-nothing step."""

    def __init__(self, store: Store, spec: str) -> None:
        self.store = store
        self.spec = spec  # the --db spec (tests/dbq.py reads it)
        self.transaction = store.transaction

    def __getattr__(self, name: str) -> Any:
        async def one(*args: Any, **kw: Any) -> Any:
            async with self.store.transaction() as tx:
                return await getattr(tx, name)(*args, **kw)

        return one

    async def close(self) -> None:
        await self.store.close()


async def open_outbox_db(spec: str) -> OutboxDb:
    return OutboxDb(await open_store(spec), spec)


def sqlite_transaction(db: OutboxDb) -> Transaction:
    """The store's transaction factory (what the server hands the worker)."""
    return db.transaction
