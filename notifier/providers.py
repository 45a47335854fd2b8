"""SMS providers: Twilio Programmable Messaging over its REST API, and the console.

A provider sends one text and can look a text up afterwards. The lookup is what makes a
crash between "sent" and "committed" safe: Twilio's create API has no idempotency key,
so the worker asks the provider whether the text went out before it ever sends again.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp

from notifier.links import redact

log = logging.getLogger("waitroom.notifier")


class ProviderError(Exception):
    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientError(ProviderError):
    """Try again later. `maybe_sent`: the provider may have accepted it (timeout, 5xx)."""

    def __init__(self, message: str, code: str | None = None, *, retry_after: float | None = None,
                 maybe_sent: bool = False) -> None:
        super().__init__(message, code)
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent


class PermanentError(ProviderError):
    """Sending again will not help (bad number, opted out at the carrier, ...)."""


# Twilio error codes that mean the number opted out at the carrier or Twilio.
OPTED_OUT_CODES = frozenset({"21610"})


@dataclass(frozen=True, slots=True)
class SentMessage:
    sid: str
    status: str | None = None


class Provider(Protocol):
    async def send(self, to: str, body: str, row_id: int) -> SentMessage:
        """Send one text; `row_id` rides on the status callback. Raises ProviderError."""
        ...

    async def lookup(self, to: str, body: str, since: datetime) -> SentMessage | None:
        """The text with this body sent to `to` since `since`, or None when the provider
        has no such text. Raises ProviderError when it cannot tell."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class ConsoleProvider:
    """The demo default: logs every text, needs no account.

    A text's links are live (a reschedule link can cancel the visit), so the log and the
    echo show them redacted unless `show_links` (the demo, where a person at the terminal
    is meant to follow them: `WAITROOM_CONSOLE_SMS_LINKS=1`)."""

    echo: bool = True
    show_links: bool = False
    sent: list[tuple[str, str, str]] = field(default_factory=list)  # sid, to, body

    async def send(self, to: str, body: str, row_id: int) -> SentMessage:
        sid = f"CONSOLE{len(self.sent) + 1:06d}"
        self.sent.append((sid, to, body))
        shown = body if self.show_links else redact(body)
        log.info("SMS to %s (row %d): %s", to, row_id, shown)
        if self.echo:
            print(f"[sms to {to}] {shown}", flush=True)
        return SentMessage(sid=sid, status="delivered")

    async def lookup(self, to: str, body: str, since: datetime) -> SentMessage | None:
        for sid, t, b in self.sent:
            if t == to and b == body:
                return SentMessage(sid=sid, status="delivered")
        return None

    async def close(self) -> None:
        return None


class TwilioProvider:
    """Twilio's Messages API: POST /2010-04-01/Accounts/{sid}/Messages.json, form-encoded.

    `status_callback_base` is our public URL; each text's StatusCallback is
    `{status_callback_base}/sms/status?row={row_id}` so the callback names its outbox row.
    `base_url` points tests at the fake on loopback.
    """

    def __init__(self, account_sid: str, auth_token: str, *, messaging_service_sid: str | None = None,
                 from_number: str | None = None, status_callback_base: str | None = None,
                 base_url: str = "https://api.twilio.com", timeout: float = 10.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        if not (messaging_service_sid or from_number):
            raise ValueError("Twilio needs a Messaging Service SID or a From number")
        self.account_sid = account_sid
        # Built by hand: aiohttp.BasicAuth is deprecated in recent aiohttp, and this works in all.
        creds = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {creds}"}
        self.messaging_service_sid = messaging_service_sid
        self.from_number = from_number
        self.status_callback_base = status_callback_base.rstrip("/") if status_callback_base else None
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._own_session = session is None

    @property
    def _messages_url(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Created lazily inside the running loop (aiohttp requires one).
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    async def send(self, to: str, body: str, row_id: int) -> SentMessage:
        form = {"To": to, "Body": body}
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        else:
            assert self.from_number is not None
            form["From"] = self.from_number
        if self.status_callback_base:
            form["StatusCallback"] = f"{self.status_callback_base}/sms/status?row={row_id}"
        try:
            async with self._sess().post(self._messages_url, data=form, headers=self._headers) as resp:
                data = await _json(resp)
                if resp.status in (200, 201):
                    return SentMessage(sid=str(data["sid"]), status=data.get("status"))
                raise _error(resp, data)
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise TransientError("Twilio did not answer in time", "timeout", maybe_sent=True) from e
        except aiohttp.ClientConnectionError as e:
            # The request may or may not have reached Twilio before the connection dropped.
            raise TransientError(f"connection to Twilio failed: {e}", "connection", maybe_sent=True) from e

    async def lookup(self, to: str, body: str, since: datetime) -> SentMessage | None:
        # List by To only (newest first): a text still queued at Twilio has no DateSent yet,
        # so a DateSent filter would miss exactly the texts we are unsure of.
        params = {"To": to, "PageSize": "50"}
        try:
            async with self._sess().get(self._messages_url, params=params, headers=self._headers) as resp:
                data = await _json(resp)
                if resp.status != 200:
                    raise _error(resp, data)
        except (TimeoutError, aiohttp.ClientError) as e:
            raise TransientError(f"could not list Twilio messages: {e}", "lookup") from e
        floor = since - timedelta(minutes=2)  # our clock and Twilio's differ a little
        for m in data.get("messages", []):
            if m.get("body") != body:
                continue
            created = _twilio_time(m.get("date_created"))
            if created is None or created >= floor:
                return SentMessage(sid=str(m["sid"]), status=m.get("status"))
        return None


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await resp.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _error(resp: aiohttp.ClientResponse, data: dict[str, Any]) -> ProviderError:
    code = str(data["code"]) if data.get("code") is not None else str(resp.status)
    message = str(data.get("message") or resp.reason or "error")
    if resp.status == 429:
        return TransientError(message, code, retry_after=_retry_after(resp.headers.get("Retry-After")))
    if resp.status >= 500:
        # A 5xx may come after Twilio created the message: check before sending again.
        return TransientError(message, code, maybe_sent=True)
    return PermanentError(message, code)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def _twilio_time(value: object) -> datetime | None:
    # Twilio writes RFC 2822 dates ("Mon, 02 Mar 2026 15:04:05 +0000").
    if not isinstance(value, str):
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None



def make_provider(kind: str, *, account_sid: str | None = None, auth_token: str | None = None,
                  from_number: str | None = None, messaging_service_sid: str | None = None,
                  base_url: str = "https://api.twilio.com", public_url: str | None = None,
                  console_links: bool = False) -> Provider:
    """The provider a config names: "console" (the default, no account) or "twilio"."""
    if kind == "console":
        return ConsoleProvider(show_links=console_links)
    if kind == "twilio":
        if not account_sid or not auth_token:
            raise ValueError("Twilio needs an account SID and an auth token")
        return TwilioProvider(account_sid, auth_token, messaging_service_sid=messaging_service_sid,
                              from_number=from_number, status_callback_base=public_url, base_url=base_url)
    raise ValueError(f"unknown SMS provider {kind!r} (console or twilio)")
