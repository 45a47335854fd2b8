"""The kiosk's only way to the clinic: JSON over HTTP to the waitroom server.

`ClinicClient` is the protocol the app depends on; `HttpClinicClient` speaks the
/api/kiosk/* routes of docs/ARCHITECTURE.md with aiohttp. Failures come out as two typed
errors: `ServerUnreachable` (try again later: take the check-in offline) and `ApiError`
(the server answered and said no).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import aiohttp

Kind = Literal["checkin", "walkin", "urgent"]
JSON = dict[str, Any]


class KioskError(Exception):
    """Base of the kiosk's own errors."""


class ServerUnreachable(KioskError):
    """No answer, a timeout or a 5xx: the request may be retried later with the same key."""


class ApiError(KioskError):
    """The server answered with a 4xx error."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.field = field


class ClinicClient(Protocol):
    """What the kiosk needs from the clinic server."""

    async def lookup(self, phone: str) -> JSON:
        """Today's appointments for a mobile number: {"now", "appointments", "sms_consent"}."""
        ...

    async def submit(self, kind: Kind, payload: JSON) -> JSON:
        """POST a check-in, walk-in or urgent call (payload carries its idempotency_key)."""
        ...

    async def visit(self, appointment: str) -> JSON:
        """The live estimate of a visit this kiosk checked in: {"now", "visits": [...]}."""
        ...

    async def clinic(self) -> JSON:
        """Who the kiosk stands for: {"name"} (the top bar shows it)."""
        ...

    async def close(self) -> None: ...


class HttpClinicClient:
    """aiohttp implementation of `ClinicClient`.

    The session is opened lazily inside the running event loop (Textual's) and closed by
    `close()`. Timeouts are short: a client at the kiosk should not wait for a dead server,
    the offline queue takes over instead.
    """

    def __init__(self, base_url: str, token: str, timeout_s: float = 4.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(2.0, timeout_s))
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.token}"}, timeout=self.timeout
            )
        return self._session

    async def _request(self, method: str, path: str, payload: JSON | None = None) -> JSON:
        try:
            async with self._get_session().request(method, self.base_url + path, json=payload) as resp:
                if resp.status >= 500:
                    raise ServerUnreachable(f"{method} {path}: server error {resp.status}")
                try:
                    body = await resp.json(content_type=None)
                except ValueError as e:
                    raise ServerUnreachable(f"{method} {path}: answer is not JSON") from e
                if resp.status >= 400:
                    err = body if isinstance(body, dict) else {}
                    raise ApiError(resp.status, str(err.get("error", resp.reason)), err.get("field"))
                if not isinstance(body, dict):
                    raise ServerUnreachable(f"{method} {path}: answer is not a JSON object")
                return body
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise ServerUnreachable(f"{method} {path}: {e!r}") from e

    async def lookup(self, phone: str) -> JSON:
        return await self._request("POST", "/api/kiosk/lookup", {"phone": phone})

    async def submit(self, kind: Kind, payload: JSON) -> JSON:
        return await self._request("POST", f"/api/kiosk/{kind}", payload)

    async def visit(self, appointment: str) -> JSON:
        return await self._request("GET", f"/api/kiosk/visits/{appointment}")

    async def clinic(self) -> JSON:
        return await self._request("GET", "/api/kiosk/clinic")

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
