"""What every HTTP handler shares: the role marker the auth middleware checks, JSON errors and
the JSON body reader. Handlers import these from here, not from the app factory."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from server.errors import BadRequest

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Roles a route admits, set by @roles; a route without it is public.
ROLES_ATTR = "__waitroom_roles__"


def roles(*allowed: str) -> Callable[[Handler], Handler]:
    """Mark a handler as needing a token of one of these roles (checked by the middleware)."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, ROLES_ATTR, allowed)
        return handler

    return mark


def json_error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": message}
    if field:
        body["field"] = field
    return web.json_response(body, status=status)


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, or a 400 naming `body`."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("body: not valid JSON", "body") from e
    except RecursionError as e:
        # 200,000 "[": the parser gives up at Python's recursion limit (about 1,000 levels).
        raise BadRequest("body: nested too deeply", "body") from e
