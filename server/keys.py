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
from server.speech import CallAudio
from server.store import Store

CONFIG = web.AppKey("config", Config)
STORE: web.AppKey[Store] = web.AppKey("store")
RUNTIME = web.AppKey("runtime", ClinicRuntime)
CLOCK = web.AppKey("clock", Clock)
# Valid tokens seen lately, by hash (server/app.py: _cached_token_role).
TOKEN_CACHE = web.AppKey("token_cache", dict)
# The notifier's outbox worker, when it runs in this process (server/sms.py).
WORKER = web.AppKey("notifier_worker", Worker)
# The last /api/estimates answer, reused while nothing changed (server/api.py).
ESTIMATES_BODY = web.AppKey("estimates_body", list)
# Live pages: the shutdown signal for their streams (server/web/live.py).
CLOSING = web.AppKey("web_closing", asyncio.Event)
# The lobby calls' sounds, made once each (server/speech.py).
CALL_AUDIO = web.AppKey("web_call_audio", CallAudio)

# Who made the request, set by the auth middleware: the token's role and "token:<name>".
ROLE = web.RequestKey("role", str)
ACTOR = web.RequestKey("actor", str)
