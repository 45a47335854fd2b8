"""Every typed key stored on the aiohttp application or request, in one place.

Handlers import their keys from here, never from the app factory (server/app.py), so the
factory imports handlers and no handler imports the factory. This module imports only the
types the keys hold.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from notifier.worker import Worker
from server.config import Clock, Config
from server.runtime import ClinicRuntime
from server.site import ClinicSite, Sites
from server.store import Store

# The process's configuration (each clinic's own, with its link secret and address, is
# `site(request).config`).
CONFIG = web.AppKey("config", Config)
CLOCK = web.AppKey("clock", Clock)
# The clinics this process serves (server/site.py); the site middleware gives each request its own.
SITES = web.AppKey("sites", Sites)
# A single-clinic server's one clinic, for tests and tools that hold the app (never set in group
# mode; handlers use `site(request)`).
STORE: web.AppKey[Store] = web.AppKey("store")
RUNTIME = web.AppKey("runtime", ClinicRuntime)
WORKER = web.AppKey("notifier_worker", Worker)
# Live pages: the shutdown signal for their streams (server/web/live.py).
CLOSING = web.AppKey("web_closing", asyncio.Event)

# The clinic the request is for, set by the site middleware (server/app.py) before any handler.
SITE = web.RequestKey("site", ClinicSite)
# Who made the request, set by the auth middleware: the token's role and "token:<name>".
ROLE = web.RequestKey("role", str)
ACTOR = web.RequestKey("actor", str)
