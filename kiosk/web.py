"""`waitroom kiosk --web`: the same kiosk app, served to tablets' browsers (issue 18).

textual-serve runs one kiosk process per browser session (its `AppService`: the Textual app
with the web driver, speaking to xterm.js in the page over a websocket). This module is the
web server around it, written for a lobby rather than for a developer's laptop:

- The kiosk token and the offline queue stay on this box: each kiosk process gets the token
  in its environment (never on a command line, never in the page); the browser only ever
  receives the screen's bytes. All sessions share the one queue file (kiosk/offline.py keeps
  their deliveries from overlapping).
- A session outlives its websocket. A tablet whose Wi-Fi drops shows "Reconnecting" and, when
  it is back, carries on where it was: the server keeps the last RING_BYTES of each session's
  screen output and the page says how many bytes it had, so the missing tail is replayed
  exactly. A session left without a browser for `grace_s` is ended (the kiosk would have
  started over by then anyway); one whose tail is gone starts afresh in the same page.
- The page (kiosk/webassets/) is made for a tablet: no zoom, no selection or callout on a long
  press, no soft keyboard (the kiosk has its own keypad), full screen on the first tap where the
  browser allows it, and a font size that fits the kiosk's layout to the screen in either
  orientation.
- Bounded: at most `max_sessions` kiosk processes; small websocket messages only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import shlex
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

log = logging.getLogger("waitroom.kiosk.web")

RING_BYTES = 2_000_000  # screen output kept per session for a reconnecting tablet (a full redraw is ~50 KB)
MAX_WS_MESSAGE = 64 * 1024  # keys, taps and resizes are a few bytes each
SEND_TIMEOUT_S = 10.0  # a tablet that stops reading (half-open connection) is let go after this
ASSETS = Path(__file__).resolve().parent / "webassets"

# textual.js builds its terminal in window.onload and keeps it to itself; the page needs it to
# fit the font to the screen and to start a fresh terminal for a fresh session (and the tests
# read the screen through it). One exact, checked edit of the served copy exposes it.
_EXPOSE = re.compile(r"const (\w+)=new (\w+)\((\w+),\{ping:(\w+)\}\);")


def patched_textual_js() -> bytes:
    """textual-serve's textual.js, pushing each terminal it makes onto window.textualTerminals."""
    src = (resources.files("textual_serve") / "static" / "js" / "textual.js").read_text(encoding="utf-8")
    matches = _EXPOSE.findall(src)
    if len(matches) != 1:
        raise RuntimeError("textual-serve's textual.js is not the one kiosk/web.py knows: pin textual-serve "
                           "to the version in pyproject.toml")
    out = _EXPOSE.sub(lambda m: m[0] + f"(window.textualTerminals=window.textualTerminals||[]).push({m[1]});", src)
    return out.encode("utf-8")


@dataclass
class KioskCommand:
    """How to start one kiosk process for a browser session."""

    server_url: str
    token: str
    queue_path: str
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def command(self) -> str:
        args = [sys.executable, "-m", "kiosk", "--server", self.server_url, "--queue", self.queue_path,
                *self.extra_args]
        return shlex.join(args)

    def environment(self) -> dict[str, str]:
        # The token goes in the environment, where only this user's processes can read it
        # (a command line is readable by every user of the box through ps).
        return {**self.env, "WAITROOM_TOKEN": self.token}


class WebSession:
    """One browser session: a kiosk process, and the websocket showing it (when connected)."""

    def __init__(self, sid: str, kiosk: KioskCommand, on_gone: Callable[[WebSession], None]) -> None:
        from textual_serve.app_service import AppService
        from textual_serve.download_manager import DownloadManager

        self.sid = sid
        self.ws: web.WebSocketResponse | None = None
        self.detached_at: float | None = time.monotonic()
        self.sent = 0  # every screen byte the kiosk process has written
        self.ring = bytearray()  # the last RING_BYTES of them
        self._lock = asyncio.Lock()
        self._on_gone = on_gone
        self.ended = False
        env = kiosk.environment()

        class _Service(AppService):
            def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
                return {**super()._build_environment(width, height), **env}

        self.service = _Service(kiosk.command(), write_bytes=self._on_bytes, write_str=self._on_str,
                                close=self._on_app_exit, download_manager=DownloadManager())

    async def start(self, width: int, height: int) -> None:
        await self.service.start(width, height)
        task = self.service._task
        assert task is not None
        task.add_done_callback(lambda _t: asyncio.ensure_future(self._on_app_exit()))

    # Output from the kiosk process --------------------------------------------------------

    async def _on_bytes(self, data: bytes) -> None:
        async with self._lock:
            self.sent += len(data)
            self.ring += data
            if len(self.ring) > RING_BYTES:
                del self.ring[: len(self.ring) - RING_BYTES]
            if self.ws is not None:
                await self._send(self.ws.send_bytes, data)

    async def _on_str(self, text: str) -> None:
        async with self._lock:
            if self.ws is not None:
                await self._send(self.ws.send_str, text)

    async def _send(self, send: Callable[[Any], Awaitable[None]], payload: Any) -> None:
        ws = self.ws
        try:
            await asyncio.wait_for(send(payload), SEND_TIMEOUT_S)
        except (TimeoutError, ConnectionError, RuntimeError) as e:  # gone, or stopped reading
            log.info("session %s: lost its browser (%r)", self.sid[:8], e)
            self._detach(ws)
            if ws is not None:
                asyncio.ensure_future(ws.close())

    async def _on_app_exit(self) -> None:
        """The kiosk process ended (it exited, or crashed): the page starts a new session."""
        if self.ended:
            return
        self.ended = True
        ws = self.ws
        self.ws = None
        self._on_gone(self)
        if ws is not None and not ws.closed:
            await ws.close(code=4001, message=b"session ended")

    # Browsers coming and going ------------------------------------------------------------

    def resumable_from(self, received: int) -> bool:
        return self.sent - len(self.ring) <= received <= self.sent

    async def attach(self, ws: web.WebSocketResponse, received: int) -> None:
        """Show this session in `ws`, sending what the page has not seen since `received`."""
        async with self._lock:
            old, self.ws = self.ws, None
            if old is not None and old is not ws:
                asyncio.ensure_future(old.close(code=4002, message=b"taken over"))
            await ws.send_str(json.dumps(["session", {"id": self.sid, "resumed": received > 0}]))
            start = received - (self.sent - len(self.ring))
            if start < len(self.ring):
                await ws.send_bytes(bytes(self.ring[start:]))
            self.ws = ws
            self.detached_at = None

    def _detach(self, ws: web.WebSocketResponse | None) -> None:
        if self.ws is ws:
            self.ws = None
            self.detached_at = time.monotonic()

    async def detach(self, ws: web.WebSocketResponse) -> None:
        async with self._lock:
            self._detach(ws)

    async def stop(self) -> None:
        """End the kiosk process (asked politely first)."""
        self.ended = True
        process = self.service._process
        try:
            await asyncio.wait_for(self.service.stop(), 10)
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 5)


class KioskWebServer:
    """The aiohttp application serving the kiosk page and one kiosk process per session."""

    def __init__(self, kiosk: KioskCommand, *, max_sessions: int = 8, grace_s: float = 120.0,
                 title: str = "waitroom kiosk") -> None:
        self.kiosk = kiosk
        self.max_sessions = max_sessions
        self.grace_s = grace_s
        self.title = title
        self.sessions: dict[str, WebSession] = {}
        self._js = patched_textual_js()
        self._reaper: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.get("/", self.index),
            web.get("/ws", self.websocket),
            web.get("/static/textual.js", self.textual_js),
            web.get("/favicon.ico", self.favicon),
            web.get("/static/{name}", self.asset),
        ])
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _start(self, _app: web.Application) -> None:
        self._reaper = asyncio.create_task(self._reap())

    async def _shutdown(self, _app: web.Application) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        sessions = list(self.sessions.values())
        self.sessions.clear()
        for s in sessions:
            if s.ws is not None:
                await s.ws.close(code=1001, message=b"server shutting down")
        await asyncio.gather(*(s.stop() for s in sessions))

    async def _reap(self) -> None:
        """End sessions whose browser has been gone longer than the grace period."""
        while True:
            await asyncio.sleep(min(5.0, self.grace_s / 4))
            now = time.monotonic()
            for s in list(self.sessions.values()):
                if s.detached_at is not None and now - s.detached_at > self.grace_s:
                    log.info("session %s: no browser for %.0f s, ending it", s.sid[:8], self.grace_s)
                    self.sessions.pop(s.sid, None)
                    await s.stop()

    # Pages ------------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        page = (ASSETS / "index.html").read_text(encoding="utf-8").replace("{{title}}", self.title)
        return web.Response(text=page, content_type="text/html", headers=NO_STORE)

    async def textual_js(self, request: web.Request) -> web.Response:
        return web.Response(body=self._js, content_type="application/javascript")

    async def favicon(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(ASSETS / "favicon.ico", headers={
            "Content-Type": "image/x-icon", "Cache-Control": "public, max-age=86400"})

    async def asset(self, request: web.Request) -> web.FileResponse:
        name = request.match_info["name"]
        for base in (ASSETS, Path(str(resources.files("textual_serve"))) / "static" / "css",
                     Path(str(resources.files("textual_serve"))) / "static" / "fonts"):
            path = base / name
            if "/" not in name and not name.startswith(".") and path.is_file() and path.name != "index.html":
                return web.FileResponse(path)
        raise web.HTTPNotFound(text="no such file")

    # The screen's websocket -----------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        q = request.query
        width, height = _int(q.get("width"), 160, 20, 400), _int(q.get("height"), 50, 10, 200)
        received = _int(q.get("received"), 0, 0, 1 << 62)
        ws = web.WebSocketResponse(heartbeat=5, max_msg_size=MAX_WS_MESSAGE)
        await ws.prepare(request)
        session = self.sessions.get(q.get("session", ""))
        if session is None or session.ended or not session.resumable_from(received):
            if len(self.sessions) >= self.max_sessions:
                await ws.close(code=4003, message=b"too many kiosk screens")
                return ws
            session = WebSession(secrets.token_urlsafe(18), self.kiosk, self._gone)
            self.sessions[session.sid] = session
            await session.start(width, height)
            received = 0
            log.info("session %s: new (%d open)", session.sid[:8], len(self.sessions))
        else:
            log.info("session %s: browser back, %d bytes to catch up", session.sid[:8], session.sent - received)
        await session.attach(ws, received)
        try:
            await self._messages(ws, session)
        finally:
            await session.detach(ws)
        return ws

    def _gone(self, session: WebSession) -> None:
        self.sessions.pop(session.sid, None)

    async def _messages(self, ws: web.WebSocketResponse, session: WebSession) -> None:
        service = session.service
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                envelope = json.loads(msg.data)
            except ValueError:
                continue
            if not isinstance(envelope, list) or not envelope or session.ended:
                continue
            kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                await service.send_bytes(data.encode("utf-8"))
            elif kind == "resize" and isinstance(data, dict):
                await service.set_terminal_size(_int(data.get("width"), 160, 20, 400),
                                                _int(data.get("height"), 50, 10, 200))
            elif kind == "ping" and isinstance(data, str) and len(data) < 40:
                await ws.send_json(["pong", data])
            elif kind == "blur":
                await service.blur()
            elif kind == "focus":
                await service.focus()


NO_STORE = {"Cache-Control": "no-store"}


def _int(value: object, default: int, low: int, high: int) -> int:
    try:
        n = int(str(value))
    except ValueError:
        return default
    return max(low, min(high, n))


def serve(kiosk: KioskCommand, host: str, port: int, *, max_sessions: int = 8, grace_s: float = 120.0) -> None:
    """Serve the kiosk to browsers until SIGINT/SIGTERM."""
    logging.basicConfig(level=os.environ.get("WAITROOM_LOG", "INFO"), format="%(asctime)s %(name)s %(message)s")
    server = KioskWebServer(kiosk, max_sessions=max_sessions, grace_s=grace_s)
    print(f"waitroom kiosk: serving the kiosk to browsers on http://{host}:{port}/", flush=True)
    web.run_app(server.app(), host=host, port=port, print=None)


def wait_until_serving(port: int, seconds: float) -> int:
    """`python -m kiosk.web wait PORT SECONDS`: until the kiosk page answers on this box
    (kiosk-browser.service starts Chromium only then, so it never shows an error page)."""
    import socket

    end = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return 0
        except OSError:
            if time.monotonic() > end:
                print(f"kiosk page not answering on port {port} after {seconds:.0f} s", file=sys.stderr)
                return 1
            time.sleep(0.5)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "wait":
        sys.exit(wait_until_serving(int(sys.argv[2]), float(sys.argv[3])))
    sys.exit("usage: python -m kiosk.web wait PORT SECONDS")
