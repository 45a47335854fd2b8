"""The aiohttp application: one factory, typed app keys, one error middleware, token auth."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_log import AccessLogger

from notifier.links import redact
from server.config import Config
from server.errors import BadRequest, Forbidden, Unauthorized, WaitroomError
from server.http import ROLES_ATTR, Handler, check_storable, json_error, read_json, roles
from server.keys import ACTOR, CLOCK, CONFIG, ROLE, RUNTIME, STORE, TOKEN_CACHE
from server.runtime import ClinicRuntime
from server.store import Store, hash_token, open_store
from server.texts import TextingOptions

log = logging.getLogger("waitroom.http")

__all__ = ["ACTOR", "CLOCK", "CONFIG", "ROLE", "RUNTIME", "STORE", "create_app", "json_error", "read_json",
           "roles"]


FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})


async def read_form(request: web.Request) -> None:
    """Read a form body once, before any handler: aiohttp keeps it for `request.post()`, and
    a form it cannot read (multipart without a boundary, a broken part header, an unknown
    charset or transfer encoding) is a 400 naming `body` on every route at once - the Twilio
    webhooks too, which read their form before the signature check."""
    if request.method != "POST" or request.content_type not in FORM_TYPES:
        return
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise
    # What aiohttp's form and multipart readers raise on a malformed body, and nothing else.
    except (ValueError, LookupError, RuntimeError, HttpProcessingError) as e:
        raise BadRequest(f"body: not a readable {request.content_type} form", "body") from e
    # A field no database can keep (a NUL) is the form's 400, not the store's 500. Not `next`:
    # the sign-in page's return path, never stored, which it checks itself and replaces with
    # /console when it is odd (a crafted link must not stop a sign-in).
    check_storable({k: v for k, v in form.items() if isinstance(v, str) and k != "next"})


# Headers of an aiohttp HTTPException worth keeping on its JSON answer (405's Allow, ...).
_KEEP_HEADERS = ("Allow", "Retry-After", "Location")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors become JSON with their status; nothing escapes as a bare 500 page."""
    try:
        await read_form(request)
        return await handler(request)
    except WaitroomError as e:
        return web.json_response(e.to_json(), status=e.status)
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, "request body too large", "body")
    except web.HTTPException as e:
        if e.status >= 400 and request.path.startswith("/api/"):
            answer = json_error(e.status, e.reason)
            answer.headers.update({k: e.headers[k] for k in _KEEP_HEADERS if k in e.headers})
            return answer
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, redact(request.path))
        return json_error(500, "internal error")


# Valid tokens seen lately, by hash: the token check is on every request, and a SQLite query
# each time (a thread hop in aiosqlite) was most of a busy lobby's cost. Unknown tokens are
# not cached (a token just created works at once); a revoked one stops within the TTL.
TOKEN_CACHE_TTL_S = 5.0


async def _cached_token_role(app: web.Application, token: str) -> tuple[str, str] | None:
    cache: dict[str, tuple[float, tuple[str, str]]] = app[TOKEN_CACHE]
    key = hash_token(token)
    t = time.monotonic()
    hit = cache.get(key)
    if hit is not None and hit[0] > t:
        return hit[1]
    async with app[STORE].read() as q:
        found = await q.token_role(token)
    if found is None:
        cache.pop(key, None)
    else:
        if len(cache) > 1000:  # a flood of distinct tokens cannot grow it without bound
            cache.clear()
        cache[key] = (t + TOKEN_CACHE_TTL_S, found)
    return found


# How long a read waits for the writes in flight before it goes ahead anyway.
READ_YIELD_S = 0.25


@web.middleware
async def reads_yield_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Reads wait for the writes in flight (Store.writes_settled): under a flood of readers,
    an event is acknowledged in milliseconds instead of seconds, and readers then see it."""
    if request.method in ("GET", "HEAD"):
        await request.app[STORE].writes_settled(READ_YIELD_S)
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    allowed: tuple[str, ...] | None = getattr(handler, ROLES_ATTR, None)
    if allowed is None:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise Unauthorized("a token is needed: Authorization: Bearer <token>", "Authorization")
    found = await _cached_token_role(request.app, header[7:].strip())
    if found is None:
        raise Unauthorized("unknown or revoked token", "Authorization")
    role, name = found
    if role not in allowed:
        raise Forbidden(f"a {role} token may not use this route", "Authorization")
    request[ROLE], request[ACTOR] = role, f"token:{name}"
    return await handler(request)


ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tf s "%{User-Agent}i"'


class ClinicAccessLogger(AccessLogger):
    """The access log of `waitroom serve`: every write, every error and every slow request,
    but not the lobby's polls. Displays and phones read estimates every few seconds all day;
    a line for each buried what matters, and under load formatting them was a quarter of the
    server's time. Link secrets are redacted (`notifier.links.redact`): a status page's live
    stream is always "slow", and a log is read by more people than should hold a client's link."""

    SLOW_S = 1.0

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.method in ("GET", "HEAD") and response.status < 400 and time < self.SLOW_S:
            return
        super().log(request, response, time)

    def _format_line(self, request: web.BaseRequest, response: web.StreamResponse,
                     time: float) -> list[tuple[str | tuple[str, str], str]]:
        # The request line is the only field of our format that can carry a secret.
        return [(key, redact(value) if key == "first_request_line" else value)
                for key, value in super()._format_line(request, response, time)]




def _per_clinic_secret(config: Config) -> Config:
    """On a group's PostgreSQL database, each clinic signs its links with its own key, derived
    from WAITROOM_SECRET and the clinic's id: clinics share PMS-style visit ids ("a1"), and one
    clinic's status or reschedule link must never open another's visit, whatever the secrets."""
    from server.store.postgres import is_postgres_url, split_url

    if not is_postgres_url(config.db_path):
        return config
    _, clinic_id = split_url(config.db_path)
    key = hmac.new(config.secret.encode(), b"waitroom-clinic:" + clinic_id.encode(), hashlib.sha256).hexdigest()
    return replace(config, secret=key)


def create_app(config: Config) -> web.Application:
    """The whole server, given an already-loaded config; tests build it the same way."""
    from server import api, kiosk_api

    app = web.Application(
        middlewares=[error_middleware, reads_yield_middleware, auth_middleware],
        client_max_size=config.max_body_bytes,
    )
    app[CONFIG] = _per_clinic_secret(config)
    app[CLOCK] = config.clock
    app[TOKEN_CACHE] = {}
    app.cleanup_ctx.append(_store_ctx)
    api.setup_routes(app)
    kiosk_api.setup_routes(app)
    from server.web import setup_web

    setup_web(app)
    from server.sms import setup_sms

    setup_sms(app)
    return app


async def _apply_retention(store: Store, settings: dict[str, Any], today: date, now: datetime) -> None:
    """The clinic's client-data retention setting (server/retention.py), applied at each start."""
    from server.retention import erase_stale_clients, retention_days

    days = retention_days(settings)
    if days is not None:
        async with store.transaction() as tx:
            n = await erase_stale_clients(tx, today, days, actor="retention", now=now)
        log.info("retention: erased contact details of %d clients not seen for %d days", n, days)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    store = await open_store(config.db_path)
    app[STORE] = store
    now = config.clock.now()
    clinic = await store.clinic()
    await _apply_retention(store, clinic.settings, now.astimezone(clinic.tz).date(), now)
    texting = TextingOptions(public_url=config.public_url, secret=config.secret.encode())
    app[RUNTIME] = await ClinicRuntime.start(store, now.astimezone(clinic.tz).date(), texting=texting,
                                             clock=config.clock.now)
    try:
        yield
    finally:
        await store.close()
