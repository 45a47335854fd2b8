"""A polite HTTP client for a practice-management system's API: one per connector.

- OAuth2 client-credentials tokens, refreshed before they expire (by our monotonic clock from
  the moment we asked: the practice system's clock and ours need not agree) and once more on a
  401 (a token revoked early); a second 401 is an error naming the credentials, not a loop.
- Each endpoint keeps under its documented rate (`per_minute`, a rolling 60 s window); a 429
  waits for its Retry-After (seconds or an HTTP date, capped) or, without one, backs off
  exponentially; a 5xx, a timeout or a refused connection is retried with backoff a bounded
  number of times, then raised as `ConnectorError` naming the endpoint and the status.
- Bodies that are not JSON, or not the shape asked for, are `ConnectorError`s (never a
  KeyError deep in a sync); a body larger than `max_body` is refused before it is parsed.
- Secrets never leave this module: error messages carry the method, the path and the status,
  never a header, the token request's body or a query's values.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger("waitroom.connectors")

Sleep = Callable[[float], Awaitable[None]]

MAX_BODY = 32 * 1024 * 1024  # a page of 1,000 appointments is well under 2 MB
MAX_RETRY_AFTER = 120.0  # a Retry-After of an hour is a broken server: wait 2 min, then ask again


class ConnectorError(Exception):
    """The practice system could not be read or written: what, where and why, in words for
    the console. `retryable` is False for what waiting will not fix (bad credentials, a 4xx)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class AuthError(ConnectorError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status, retryable=False)


@dataclass(slots=True)
class Credentials:
    """Client credentials; `extra` is what the token endpoint needs besides (ezyVet's
    partner_id, scope, site_uid). `api_token` (Provet's "Authorization: Token ...") skips OAuth."""

    token_url: str = ""
    client_id: str = ""
    client_secret: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    json_body: bool = True  # ezyVet takes JSON; Provet takes a form with HTTP Basic auth
    api_token: str | None = None

    def __repr__(self) -> str:  # never print a secret, even in a traceback's locals
        return f"Credentials(token_url={self.token_url!r}, client_id={self.client_id!r}, secret=<hidden>)"


@dataclass(slots=True)
class Stats:
    requests: int = 0
    token_requests: int = 0
    retries: int = 0
    throttled: int = 0
    waited_s: float = 0.0


def _path(url: str) -> str:
    """The part of a URL fit for a message: no query (filter values), no credentials."""
    parts = urlsplit(url)
    return parts.path or "/"


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP date (RFC 9110). None when
    absent or unreadable; never negative, capped at MAX_RETRY_AFTER."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class PoliteClient:
    """Requests to one practice system's API, within its rules (see the module doc)."""

    def __init__(self, base_url: str, credentials: Credentials, *, per_minute: int = 60, max_attempts: int = 5,
                 backoff_s: float = 1.0, timeout_s: float = 30.0, sleep: Sleep = asyncio.sleep,
                 monotonic: Callable[[], float] = time.monotonic, name: str = "pms") -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.per_minute = per_minute
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.sleep = sleep
        self.monotonic = monotonic
        self.name = name
        self.stats = Stats()
        self._token: str | None = None
        self._token_until = 0.0
        self._token_lock = asyncio.Lock()
        self._sent: dict[str, deque[float]] = {}
        self._session: aiohttp.ClientSession | None = None
        origin = urlsplit(self.base_url)
        self._origin = (origin.scheme, origin.netloc)

    async def __aenter__(self) -> PoliteClient:
        self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    def same_origin(self, url: str) -> bool:
        """A "next page" link we may follow with our token: the API's own scheme and host."""
        parts = urlsplit(url)
        return (parts.scheme, parts.netloc) == self._origin

    # -- tokens ---------------------------------------------------------------------------

    async def token(self) -> str:
        creds = self.credentials
        if creds.api_token:
            return creds.api_token
        async with self._token_lock:
            if self._token is not None and self.monotonic() < self._token_until:
                return self._token
            await self._fetch_token()
            assert self._token is not None
            return self._token

    def forget_token(self) -> None:
        self._token = None
        self._token_until = 0.0

    async def _fetch_token(self) -> None:
        creds = self.credentials
        if not (creds.token_url and creds.client_id and creds.client_secret):
            raise AuthError(f"{self.name}: no client credentials configured (client id and secret)")
        body: dict[str, str] = {"grant_type": "client_credentials", **creds.extra}
        asked = self.monotonic()
        attempt = 0
        while True:
            attempt += 1
            self.stats.token_requests += 1
            try:
                if creds.json_body:
                    resp_cm = self.session.post(
                        creds.token_url, json={**body, "client_id": creds.client_id,
                                               "client_secret": creds.client_secret})
                else:
                    basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
                    resp_cm = self.session.post(creds.token_url, data=body, headers={"Authorization": f"Basic {basic}"})
                async with resp_cm as resp:
                    status = resp.status
                    text = await resp.text(errors="replace") if status < 500 else ""
                    retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as e:
                if attempt >= self.max_attempts:
                    raise ConnectorError(f"{self.name}: token endpoint unreachable ({type(e).__name__})") from e
                await self._backoff(attempt, None)
                continue
            if status == 429 or status >= 500:
                if attempt >= self.max_attempts:
                    raise ConnectorError(f"{self.name}: token endpoint answered {status} {attempt} times",
                                         status=status)
                await self._backoff(attempt, retry_after if status == 429 else None)
                continue
            if status in (400, 401, 403):
                raise AuthError(f"{self.name}: the token endpoint refused the client credentials ({status}): "
                                "check the client id, secret and partner id", status=status)
            if status != 200:
                raise ConnectorError(f"{self.name}: token endpoint answered {status}", status=status, retryable=False)
            try:
                doc = json.loads(text)
            except ValueError as e:
                raise ConnectorError(f"{self.name}: token endpoint answered something that is not JSON") from e
            token = doc.get("access_token") if isinstance(doc, dict) else None
            if not isinstance(token, str) or not token:
                raise ConnectorError(f"{self.name}: token endpoint's answer has no access_token")
            self._token = token
            self._token_until = asked + self._lifetime(doc.get("expires_in"))
            return

    @staticmethod
    def _lifetime(expires_in: object) -> float:
        """Seconds to use a token for: its lifetime less a margin, at most 12 hours (ezyVet's
        documented TTL). ezyVet's docs call expires_in "epoch format": a value that reads as a
        Unix time (after 2001) is taken as one - but our clock may be wrong, so it only ever
        shortens the lifetime to the 12 h cap, never trusts it to lengthen it."""
        cap = 12 * 3600.0
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float | str):
            return 3600.0 * 0.9
        try:
            value = float(expires_in)
        except ValueError:
            return 3600.0 * 0.9
        if value > 1_000_000_000:  # an absolute time
            value = value - time.time()
        value = min(max(value, 0.0), cap)
        # Refresh at 90% of the lifetime, and at least 5 min early (a slow sync must not run
        # its last pages on a token about to lapse).
        return max(min(value * 0.9, value - 300.0), 0.0)

    # -- rate ----------------------------------------------------------------------------

    async def _pace(self, endpoint: str) -> None:
        """Wait until one more request to `endpoint` keeps within `per_minute` in any 60 s."""
        sent = self._sent.setdefault(endpoint, deque())
        while True:
            now = self.monotonic()
            while sent and now - sent[0] >= 60.0:
                sent.popleft()
            if len(sent) < self.per_minute:
                sent.append(now)
                return
            wait = 60.0 - (now - sent[0]) + 0.01
            self.stats.waited_s += wait
            await self.sleep(wait)

    async def _backoff(self, attempt: int, retry_after: str | None) -> None:
        self.stats.retries += 1
        wait = retry_after_seconds(retry_after, datetime.now(UTC))
        if wait is None:
            wait = min(self.backoff_s * 2 ** (attempt - 1), MAX_RETRY_AFTER)
        self.stats.waited_s += wait
        await self.sleep(wait)

    # -- requests ------------------------------------------------------------------------

    async def request(self, method: str, url: str, *, endpoint: str, params: Mapping[str, str] | None = None,
                      json_body: object = None, form: Mapping[str, str] | None = None,
                      ok: tuple[int, ...] = (200, 201), allow: tuple[int, ...] = ()) -> tuple[int, Any]:
        """(status, parsed JSON body) of one call, after the retries the module doc describes.
        A status in `allow` (404 for a deleted record) is returned, not raised."""
        if not url.startswith(("http://", "https://")):
            url = f"{self.base_url}/{url.lstrip('/')}"
        where = f"{method} {_path(url)}"
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            await self._pace(endpoint)
            token = await self.token()
            scheme = "Token" if self.credentials.api_token else "Bearer"
            headers = {"Authorization": f"{scheme} {token}", "Accept": "application/json"}
            self.stats.requests += 1
            try:
                async with self.session.request(method, url, params=params, json=json_body, data=form,
                                                headers=headers) as resp:
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                    length = resp.content_length
                    if length is not None and length > MAX_BODY:
                        raise ConnectorError(f"{self.name}: {where} answered {length} bytes (at most {MAX_BODY})",
                                             status=status, retryable=False)
                    raw = await _read_capped(resp, MAX_BODY + 1)
            except (aiohttp.ClientError, TimeoutError) as e:
                if attempt >= self.max_attempts:
                    raise ConnectorError(f"{self.name}: {where}: no answer after {attempt} tries "
                                         f"({type(e).__name__})") from e
                await self._backoff(attempt, None)
                continue
            if len(raw) > MAX_BODY:
                raise ConnectorError(f"{self.name}: {where} answered more than {MAX_BODY} bytes", retryable=False)
            if status == 401:
                if refreshed or self.credentials.api_token:
                    raise AuthError(f"{self.name}: {where} answered 401 with a fresh token: the integration's "
                                    "access was revoked or lacks a scope", status=401)
                log.info("%s: %s answered 401; asking for a new token", self.name, where)
                self.forget_token()
                refreshed = True
                attempt -= 1  # a token refresh is not a failed try
                continue
            if status == 429:
                self.stats.throttled += 1
                if attempt >= self.max_attempts:
                    raise ConnectorError(f"{self.name}: {where} still rate-limited (429) after {attempt} tries",
                                         status=429)
                log.info("%s: %s answered 429 (Retry-After %s)", self.name, where, retry_after or "none")
                await self._backoff(attempt, retry_after)
                continue
            if status >= 500:
                if attempt >= self.max_attempts:
                    raise ConnectorError(f"{self.name}: {where} answered {status} {attempt} times in a row",
                                         status=status)
                await self._backoff(attempt, retry_after)
                continue
            if status not in ok and status not in allow:
                raise ConnectorError(f"{self.name}: {where} answered {status}: {_error_text(raw)}", status=status,
                                     retryable=False)
            if not raw.strip():
                return status, None
            try:
                return status, json.loads(raw)
            except (ValueError, RecursionError) as e:
                raise ConnectorError(f"{self.name}: {where} answered {status} with a body that is not JSON") from e


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or its first `limit` bytes (StreamReader.read(n) answers what has
    arrived so far, not n bytes: read until the end or the limit)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await resp.content.read(min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _error_text(raw: bytes) -> str:
    """The practice system's own words for an error, short: ezyVet's messages[].text, Provet's
    (Django REST framework's) detail or field lists; else the start of the body."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return raw[:120].decode("utf-8", "replace")
    if isinstance(doc, dict):
        messages = doc.get("messages")
        if isinstance(messages, list):
            texts = [str(m.get("text")) for m in messages if isinstance(m, dict) and m.get("text")]
            if texts:
                return "; ".join(texts)[:200]
        if "detail" in doc:
            return str(doc["detail"])[:200]
        return "; ".join(f"{k}: {v}" for k, v in list(doc.items())[:3])[:200]
    return str(doc)[:200]
