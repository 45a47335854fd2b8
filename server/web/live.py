"""Server-sent events: a page's live regions, re-rendered and pushed on every store change.

A stream sends the page's fragments (JSON: region id -> HTML) when it opens, within a
second of any committed write (Store.wait_for_change), and every few seconds anyway so
"waiting 12 min" keeps counting. Nothing is sent when nothing changed but a comment
heartbeat, which also finds dead connections.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from server.http import site
from server.keys import CLOSING

Render = Callable[[], Awaitable[dict[str, str] | None]]

REFRESH_S = 5.0  # re-render this often without a change: the clock moves the estimates
HEARTBEAT_S = 15.0


async def stream(request: web.Request, render: Render) -> web.StreamResponse:
    """Serve `render()`'s fragments as an event stream until the client leaves; None ends it."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    store = site(request).store
    closing = request.app[CLOSING]
    last_payload = ""
    last_write = last_render = 0.0
    version = -1
    try:
        # Tell the browser to retry quickly after a restart (the default is ~3 s).
        await resp.write(b"retry: 1000\n\n")
        while not closing.is_set():
            now = time.monotonic()
            if store.version != version or now - last_render >= REFRESH_S:
                version = store.version
                last_render = now
                fragments = await render()
                if fragments is None:  # signed out, token revoked: stop, the page will reload
                    await resp.write(b"event: gone\ndata: {}\n\n")
                    break
                payload = json.dumps(fragments)
                if payload != last_payload:
                    await resp.write(f"data: {payload}\n\n".encode())
                    last_payload, last_write = payload, now
            if now - last_write >= HEARTBEAT_S:
                await resp.write(b": ping\n\n")
                last_write = now
            # Wakes at once on a commit; the 1 s cap lets shutdown end the stream promptly.
            await store.wait_for_change(version, 1.0)
    except (ConnectionResetError, ConnectionError):
        pass  # the page went away
    return resp
