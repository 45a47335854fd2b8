"""The web pages: reception console (staff login), lobby display, client status page.

`setup_web(app)` adds the routes, the templates, the static files, the security headers
and the live streams' shutdown signal to the app `create_app` builds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from server.keys import CLOSING
from server.web import console, group, public, reports, reschedule
from server.web.render import TEMPLATES, make_env

STATIC = Path(__file__).parent / "static"

# No inline script or style anywhere: the pages' JavaScript and CSS are files, so this holds.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/api/"):
        return
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    # Status and display links carry their secret in the URL: never leak it to another site.
    h.setdefault("Referrer-Policy", "no-referrer")
    if not request.path.startswith("/static/"):
        # Pages show names and notes: not for shared caches or the browser's back-forward disk cache.
        h.setdefault("Cache-Control", "no-store")


async def _favicon(request: web.Request) -> web.StreamResponse:
    # Every browser asks for it on every page: an answer, not a 404 in the logs. No secret in
    # it, so it may be cached (the page rule above would say no-store).
    return web.FileResponse(STATIC / "favicon.ico", headers={
        "Content-Type": "image/x-icon", "Cache-Control": "public, max-age=86400"})


async def _root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/console")


def setup_web(app: web.Application) -> None:
    """Add the console, display and status pages to `app`."""
    app[TEMPLATES] = make_env()
    app[CLOSING] = asyncio.Event()

    async def on_shutdown(app: web.Application) -> None:
        # Live streams otherwise hold a graceful shutdown open until its timeout.
        app[CLOSING].set()

    app.on_shutdown.append(on_shutdown)
    app.on_response_prepare.append(_security_headers)
    console.setup_routes(app)
    reports.setup_routes(app)
    group.setup_routes(app)
    public.setup_routes(app)
    reschedule.setup_routes(app)
    if not any(res.canonical == "/" for res in app.router.resources()):
        app.router.add_get("/", _root)
    app.router.add_get("/favicon.ico", _favicon)
    app.router.add_static("/static/", STATIC, append_version=False)


__all__ = ["setup_web"]
