"""Pages without a staff login: the lobby display (display token) and a client's status page
(a signed per-visit link). Both show only what their viewer may see, and update live.
The status page speaks the client's language (server/web/i18n.py); the display is English."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from notifier import formats
from notifier.links import verify_status_token
from server import speech
from server.errors import Conflict
from server.events import Event
from server.http import site
from server.keys import CLOCK
from server.texts import vet_title
from server.web import calls, i18n, live
from server.web.board import Board, load_board
from server.web.i18n import Lang
from server.web.render import helpers, render, round5

log = logging.getLogger("waitroom.web")

# Roles whose token opens the lobby display (reception may open it to check what it shows).
DISPLAY_ROLES = ("display", "reception")


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html")


async def _display_ok(request: web.Request) -> bool:
    token = request.query.get("token", "")
    found = None
    if token:
        async with site(request).store.read() as q:
            found = await q.token_role(token)
    return found is not None and found[0] in DISPLAY_ROLES


def _page_error(status: int, text: str, lang: Lang = "en") -> web.Response:
    return _html(f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'><title>{status}</title>"
                 f"<link rel='stylesheet' href='/static/waitroom.css'></head><body class='status-page'>"
                 f"<main class='status'><h1>{text}</h1></main></body></html>", status)


def _display_context(request: web.Request, board: Board) -> dict[str, Any]:
    """The board, and the names being called (with their sound's token-protected address)."""
    token = request.query["token"]
    return {**helpers(board), "calls": calls.current_calls(board), "call_mode": calls.mode(board.settings),
            "call_audio": lambda c: f"/display/call/{c.id}.wav?{urlencode({'token': token})}"}


async def display_page(request: web.Request) -> web.StreamResponse:
    if not await _display_ok(request):
        return _page_error(401, "This display needs a valid display token.")
    board = await load_board(site(request).runtime, request.app[CLOCK].now())
    token = request.query["token"]
    return _html(render(request, "display.html", csrf=None, live_url=f"/display/live?{urlencode({'token': token})}",
                        **_display_context(request, board)))


async def display_live(request: web.Request) -> web.StreamResponse:
    if not await _display_ok(request):
        return web.json_response({"error": "unknown or revoked display token"}, status=401)

    async def fragments() -> dict[str, str] | None:
        if not await _display_ok(request):
            return None
        board = await load_board(site(request).runtime, request.app[CLOCK].now())
        return {"display": render(request, "_display.html", **_display_context(request, board))}

    return await live.stream(request, fragments)


async def display_call_audio(request: web.Request) -> web.StreamResponse:
    """A current call's chime and words as WAV, for a display token only; 404 once it is over."""
    if not await _display_ok(request):
        return web.json_response({"error": "unknown or revoked display token"}, status=401)
    board = await load_board(site(request).runtime, request.app[CLOCK].now())
    if calls.mode(board.settings) != "speak":
        raise web.HTTPNotFound(text="calls are not spoken at this clinic")
    call = next((c for c in calls.current_calls(board) if c.id == request.match_info["id"]), None)
    if call is None:
        raise web.HTTPNotFound(text="no such call now")
    try:
        audio = await site(request).call_audio.get(call)
    except speech.CallAudioError as e:
        log.warning("lobby call not spoken: %s", e)
        return web.json_response({"error": "the call could not be spoken"}, status=503)
    return web.Response(body=audio, content_type="audio/wav", headers={"Cache-Control": "no-store"})


# -- the client's status page -------------------------------------------------------------------


def _visit_id(request: web.Request) -> str | None:
    return verify_status_token(site(request).config.secret, request.match_info["token"])


def _car_csrf(request: web.Request) -> str:
    # The page has no session: a MAC of its own link is a CSRF token only this page knows.
    key = site(request).config.secret.encode()
    return hmac.new(key, b"car:" + request.match_info["token"].encode(), hashlib.sha256).hexdigest()[:32]


async def _client_language(request: web.Request, vid: str | None) -> Lang:
    """`?lang=` (the page's switch link), else the visit's client's stored language, else (no
    client known) the browser's."""
    if (asked := i18n.asked(request)) is not None:
        return asked
    stored = None
    if vid is not None:
        async with site(request).store.read() as q:
            stored = await q.client_language(vid)
    return i18n.choose(request, stored)


def _keep_lang(request: web.Request, url: str) -> str:
    """`url`, carrying a language the client picked with the switch link."""
    asked = i18n.asked(request)
    return url if asked is None else f"{url}{'&' if '?' in url else '?'}lang={asked}"


async def _status_ctx(request: web.Request, board: Board, vid: str, lang: Lang) -> dict[str, Any] | None:
    v = board.visits.get(vid)
    if v is None:
        return None
    lane = board.lane(v.vet)
    token = request.match_info["token"]
    config = site(request).config
    # No reschedule (or cancel) link here: this page is opened from the kiosk's QR code, so
    # anyone who typed the client's number could open it. Changing the visit takes the client's
    # phone (texting 2 gets a link sent to the number on file) or a call to reception.
    sms_number = config.twilio_from if config.sms_provider == "twilio" else None
    ctx: dict[str, Any] = {
        **helpers(board), "v": v, "place": board.place_in_line(vid),
        "vet_name": _vet_in(lane.name if lane else v.vet, v.vet, board, request, lang),
        "token": token, "csrf": _car_csrf(request), "now": board.now, "can_text": bool(v.mobile and v.sms_consent),
        "sms_number": sms_number,
        "car_url": _keep_lang(request, f"/s/{token}/car"),
        **i18n.page_ctx(request, lang, switch_query={})}
    ctx["range5"] = lambda a, b: formats.clock_range(round5(a, board.tz), round5(b, board.tz, True), board.tz, lang)
    if lang != "en":  # English keeps render.py's own helpers, so its output stays as it was
        tz = board.tz

        def hm5(t: datetime, up: bool = False) -> str:
            return i18n.clock5(t, tz, lang, up)

        ctx |= {"hm": lambda t: i18n.clock(t, tz, lang), "hm5": hm5, "ordinal": lambda n: i18n.ordinal(n, lang)}
    return ctx


def _vet_in(name: str, vet_id: str, board: Board, request: web.Request, lang: Lang) -> str:
    """The vet inside a sentence: Spanish gives the title and article ("con la Dra. Ana Ruiz")."""
    return formats.vet_es(name, vet_title(site(request).runtime.clinic, vet_id)) if lang == "es" else name


async def status_page(request: web.Request) -> web.StreamResponse:
    vid = _visit_id(request)
    board = await load_board(site(request).runtime, request.app[CLOCK].now())
    lang = await _client_language(request, vid)
    ctx = await _status_ctx(request, board, vid, lang) if vid else None
    if ctx is None:
        return _page_error(404, i18n.text(lang, "status_invalid"), lang)
    live_url = _keep_lang(request, f"/s/{request.match_info['token']}/live")
    return _html(render(request, "status.html", live_url=live_url, **ctx))


async def status_live(request: web.Request) -> web.StreamResponse:
    vid = _visit_id(request)
    if vid is None:
        return web.json_response({"error": "invalid link"}, status=404)

    lang: Lang | None = None

    async def fragments() -> dict[str, str] | None:
        nonlocal lang
        board = await load_board(site(request).runtime, request.app[CLOCK].now())
        if lang is None:  # once per stream: the page it feeds keeps its language
            lang = await _client_language(request, vid)
        ctx = await _status_ctx(request, board, vid, lang)
        return None if ctx is None else {"status": render(request, "_status.html", **ctx)}

    return await live.stream(request, fragments)


async def in_car(request: web.Request) -> web.StreamResponse:
    vid = _visit_id(request)
    if vid is None:
        lang = await _client_language(request, None)
        return _page_error(404, i18n.text(lang, "link_invalid"), lang)
    lang = await _client_language(request, vid)
    form = await request.post()
    sent = request.headers.get("X-CSRF-Token") or form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), _car_csrf(request).encode()):
        raise web.HTTPForbidden(text=str(i18n.text(lang, "car_refused")))
    rt = site(request).runtime
    now = request.app[CLOCK].now()
    async with site(request).store.read() as q:
        in_car = await q.waiting_in_car(vid)
    if not in_car:
        try:
            await rt.post_event(Event("in_car", now, vid, {}), "client", now)
        except Conflict as e:
            if request.headers.get("X-Requested-With") == "fetch":
                return web.json_response(e.to_json(), status=e.status)
            raise web.HTTPSeeOther(_keep_lang(request, f"/s/{request.match_info['token']}")) from e
    if request.headers.get("X-Requested-With") == "fetch":
        return web.json_response({"ok": True, "message": str(i18n.text(lang, "car_thanks"))})
    raise web.HTTPSeeOther(_keep_lang(request, f"/s/{request.match_info['token']}"))


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/display", display_page)
    r.add_get("/display/live", display_live)
    r.add_get("/display/call/{id:[0-9a-f]{20}}.wav", display_call_audio)
    r.add_get("/s/{token}", status_page)
    r.add_get("/s/{token}/live", status_live)
    r.add_post("/s/{token}/car", in_car)
