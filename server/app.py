"""The aiohttp application: one factory, typed app keys, one error middleware, the site middleware
(each request's clinic, and its token)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_log import AccessLogger

from notifier.links import redact
from server.config import Config
from server.errors import BadRequest, Forbidden, Unauthorized, WaitroomError
from server.http import ROLES_ATTR, Handler, check_storable, json_error, read_json, roles
from server.keys import ACTOR, CLOCK, CONFIG, ROLE, RUNTIME, SITE, SITES, STORE, WORKER
from server.site import Sites, clinic_secret
from server.store.interface import ONE_CLINIC, StoreUrlError
from server.store.postgres import is_postgres_url

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


# How long a read waits for the writes in flight before it goes ahead anyway.
READ_YIELD_S = 0.25

# Routes that serve every clinic alike: a group-mode request for them needs no clinic.
_NO_CLINIC = ("/api/health", "/api/openapi.json", "/favicon.ico")


def _no_clinic_page(request: web.Request) -> web.StreamResponse:
    if request.path.startswith("/api/") or request.path.startswith("/sms/"):
        return json_error(404, "no clinic at this address: use the clinic's own address, or a token", "Host")
    return web.Response(status=404, content_type="text/html", text=(
        "<!doctype html><html lang=en><meta charset=utf-8><title>No clinic here</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/static/waitroom.css"><main class="no-clinic">'
        "<h1>No clinic at this address</h1><p>This address names none of the clinics served here. "
        "Check the link, or ask the clinic for its own address.</p></main></html>"))


@web.middleware
async def site_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request its clinic (server/site.py) before any handler, and check its token.

    A route marked with @roles needs `Authorization: Bearer <token>`, and the clinic is the
    token's; every other route's clinic is the one whose public address the Host is (the one
    clinic, outside group mode). Reads then wait for the clinic's writes in flight
    (Store.writes_settled): under a flood of readers, an event is acknowledged in milliseconds
    instead of seconds, and readers then see it."""
    if request.match_info.http_exception is not None:
        return await handler(request)  # no such route (404/405): nothing to route
    sites = request.app[SITES]
    allowed: tuple[str, ...] | None = getattr(request.match_info.handler, ROLES_ATTR, None)
    if allowed is not None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            raise Unauthorized("a token is needed: Authorization: Bearer <token>", "Authorization")
        found = await sites.by_token(header[7:].strip())
        if found is None:
            raise Unauthorized("unknown or revoked token", "Authorization")
        clinic, role, name = found
        if role not in allowed:
            raise Forbidden(f"a {role} token may not use this route", "Authorization")
        request[SITE], request[ROLE], request[ACTOR] = clinic, role, f"token:{name}"
    else:
        found_site = await sites.by_host(request.headers.get("Host"))
        if found_site is None:
            if request.path in _NO_CLINIC or request.path.startswith("/static/"):
                return await handler(request)
            return _no_clinic_page(request)
        request[SITE] = found_site
    if request.method in ("GET", "HEAD"):
        await request[SITE].store.writes_settled(READ_YIELD_S)
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
    """The config with the key a PostgreSQL clinic signs its links with (server/site.py:
    clinic_secret); a SQLite clinic signs with WAITROOM_SECRET itself. (Tests sign links with it.)"""
    from server.store.postgres import GROUP, split_url

    if not is_postgres_url(config.db_path) or split_url(config.db_path)[1] == GROUP:
        return config
    return replace(config, secret=clinic_secret(config.secret, split_url(config.db_path)[1]))


def create_app(config: Config) -> web.Application:
    """The whole server, given an already-loaded config; tests build it the same way."""
    from server import api, kiosk_api

    if not is_postgres_url(config.db_path) and "?clinic=" in config.db_path:
        raise StoreUrlError(ONE_CLINIC)
    app = web.Application(middlewares=[error_middleware, site_middleware], client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[CLOCK] = config.clock
    app[SITES] = Sites(config)
    app.cleanup_ctx.append(_store_ctx)
    api.setup_routes(app)
    kiosk_api.setup_routes(app)
    from server.web import setup_web

    setup_web(app)
    from server.sms import setup_sms

    setup_sms(app)
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    sites = app[SITES]
    await sites.open()
    if sites.single is not None:  # for tests and tools holding a single clinic's app
        app[STORE], app[RUNTIME] = sites.single.store, sites.single.runtime
        if sites.single.worker is not None:
            app[WORKER] = sites.single.worker
    try:
        yield
    finally:
        await sites.close()
