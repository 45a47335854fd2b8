"""What every HTTP handler shares: the role marker the auth middleware checks, JSON errors and
the JSON body reader. Handlers import these from here, not from the app factory."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from server.errors import BadRequest
from server.keys import SITE
from server.site import ClinicSite

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Roles a route admits, set by @roles; a route without it is public.
ROLES_ATTR = "__waitroom_roles__"


def roles(*allowed: str) -> Callable[[Handler], Handler]:
    """Mark a handler as needing a token of one of these roles (checked by the middleware)."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, ROLES_ATTR, allowed)
        return handler

    return mark


def site(request: web.Request) -> ClinicSite:
    """The clinic this request is for (set by the site middleware before any handler runs)."""
    return request[SITE]


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
        value = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("body: not valid JSON", "body") from e
    except RecursionError as e:
        # 200,000 "[": the parser gives up at Python's recursion limit (about 1,000 levels).
        raise BadRequest("body: nested too deeply", "body") from e
    check_storable(value)
    return value


def _unstorable(text: str) -> str | None:
    """Why no database can keep `text` (None: it can): PostgreSQL refuses the NUL character in
    text (SQLite keeps it, and its string functions stop at it), and neither can encode a lone
    UTF-16 surrogate, which JSON's \\u escapes can spell ("\\ud800")."""
    if "\x00" in text:
        return "contains the NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate (\\ud800-\\udfff), not a character"
    return None


def check_storable(value: Any, path: str = "") -> None:
    """A 400 naming the first field whose text (or key) no database can keep, before any of it
    reaches the store: otherwise the driver's refusal is a 500 (PostgreSQL), or the text is cut
    short where SQLite reads it. Walks without recursion (JSON may nest ~1,000 deep)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            why = _unstorable(item)
            if why is not None:
                field = where or "body"
                raise BadRequest(f"{field}: {why}", field)
        elif isinstance(item, dict):
            for k, v in item.items():
                if _unstorable(k) is not None:
                    field = where or "body"
                    raise BadRequest(f"{field}: a key {_unstorable(k)}", field)
                stack.append((v, f"{where}.{k}" if where else k))
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
