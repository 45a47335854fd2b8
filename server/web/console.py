"""The reception console: login, the live board, and every override as an event.

Each override is a small form (CSRF token inside) that works as a plain POST and redirect;
the page's script posts the same forms with fetch, so the board stays put and the live
stream redraws it. Every override goes through `apply_event`, so it is in the log with
who and when, and can be undone from the "Recent actions" list. Reception's decisions on the
texts the notifier could not settle ("Texts that need you": held or failed) are logged the
same way, but are final: a text sent again is with the provider within a second.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from aiohttp import web

from notifier import formats
from server.domain import DayState
from server.errors import BadRequest, Conflict, NotFound, WaitroomError
from server.estimator import EARLY_START_MIN, dispatch_order
from server.events import Event, apply_event
from server.http import site
from server.keys import CLOCK
from server.phones import line_kind
from server.texts import save_vet_title
from server.timeutil import to_db
from server.web import live
from server.web.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_HOURS,
    STAFF,
    LoginResult,
    Staff,
    current_staff,
    log_in,
    log_out,
    set_cookie,
    staff_page,
    staff_post,
    wants_json,
)
from server.web.board import (
    ALERT_TYPES,
    Board,
    inbox,
    load_board,
    open_alerts,
    order_time,
    recent_log,
    texts_for_reception,
)
from server.web.pms import pms_context, pms_write_decision
from server.web.render import helpers, hm, render

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SQLITE_MAX_INT = 2**63 - 1  # a larger id in a URL is no row (and SQLite refuses it as a parameter)


def _url_int(request: web.Request, name: str, what: str) -> int:
    """A numeric id from the URL (the route admits digits only); one too large for SQLite is a 404."""
    n = int(request.match_info[name])
    if n > _SQLITE_MAX_INT:
        raise NotFound(f"no {what} number {n}: reload the page for the current list", name)
    return n


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html")


def _safe_next(value: object) -> str:
    """Only a path on this site: `next=//evil.example` must not become an open redirect.

    Judged on the characters a browser will act on: it drops tabs and newlines from a URL
    and reads a backslash as a slash, so "/\\n/evil.example" is "//evil.example". Anything but
    printable ASCII without a backslash is refused outright (none of our paths has any), and
    what is left must parse as a bare path: no scheme, no host.
    """
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 2000:
        return "/console"
    if not all("!" <= c <= "~" for c in value) or "\\" in value:
        return "/console"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return "/console"
    return value


# -- login ------------------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.StreamResponse:
    if await current_staff(request) is not None:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
    return await _login_form(request, None, 200, name="")


async def _login_form(request: web.Request, error: str | None, status: int, name: str) -> web.StreamResponse:
    # Login has no session yet: its CSRF token is a cookie the form must echo (double submit).
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    clinic = site(request).runtime.clinic.name
    resp = _html(render(request, "login.html", clinic=clinic, csrf=None, live_url=None, error=error,
                        login_csrf=token, name=name, next=_safe_next(request.query.get("next"))), status)
    set_cookie(resp, request, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return resp


async def login_post(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    sent = form.get("csrf")
    if not cookie or not isinstance(sent, str) or not secrets.compare_digest(sent.encode(), cookie.encode()):
        raise web.HTTPForbidden(text="Refused: the sign-in form's security token is missing. Reload and try again.")
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    result, token, locked_until = await log_in(request, name, password)
    if result in (LoginResult.LOCKED, LoginResult.ADDRESS_LOCKED):
        tz = site(request).runtime.clinic.tz
        until = hm(locked_until, tz) if locked_until else "later"
        what = "this account is" if result == LoginResult.LOCKED else "sign-ins from this computer are"
        return await _login_form(request, f"Too many failed attempts: {what} locked until {until}.", 429, name)
    if result == LoginResult.BAD or token is None:
        return await _login_form(request, "Wrong name or password.", 401, name)
    resp = web.HTTPSeeOther(_safe_next(form.get("next")))
    set_cookie(resp, request, SESSION_COOKIE, token, max_age=SESSION_HOURS * 3600)
    resp.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    raise resp


@staff_post
async def logout_post(request: web.Request) -> web.StreamResponse:
    await log_out(request)
    resp = web.HTTPSeeOther("/login")
    resp.del_cookie(SESSION_COOKIE, path="/")
    raise resp


# -- the board ----------------------------------------------------------------------------------


async def _fragments(request: web.Request, staff: Staff) -> tuple[Board, dict[str, Any]]:
    rt = site(request).runtime
    now = request.app[CLOCK].now()
    board = await load_board(rt, now)
    midnight = datetime.combine(rt.today(now), time(0), rt.clinic.tz)
    async with site(request).store.read() as q:
        ctx = {**helpers(board), "csrf": staff.csrf, "staff": staff,
               "alerts": await open_alerts(q, board.day_start - timedelta(hours=4), board.tz),
               "texts": await texts_for_reception(q, rt.clinic.region, since=midnight),
               "inbox": await inbox(q), "log": await recent_log(q, board.day_start - timedelta(hours=4)),
               **await pms_context(q, now)}
    return board, ctx


@staff_page
async def console_page(request: web.Request) -> web.StreamResponse:
    staff = request[STAFF]
    _, ctx = await _fragments(request, staff)
    msg, error, undo = _read_flash(request, staff)
    return _html(render(request, "console.html", live_url="/console/live", flash_msg=msg,
                        flash_error=error, flash_undo=undo, **ctx))


async def console_live(request: web.Request) -> web.StreamResponse:
    if await current_staff(request) is None:
        return web.json_response({"error": "not signed in"}, status=401)

    async def fragments() -> dict[str, str] | None:
        staff = await current_staff(request)
        if staff is None:
            return None
        _, ctx = await _fragments(request, staff)
        return {name: render(request, f"_{name}.html", **ctx) for name in ("board", "side", "alerts")}

    return await live.stream(request, fragments)


# -- the message after a plain form post -----------------------------------------------------


def _flash_sig(request: web.Request, staff: Staff, fields: dict[str, str]) -> str:
    # Keyed by the server's secret and bound to this session (its CSRF token): a link made up by
    # anyone else, or a real one re-worded or followed by another member of staff, is not shown.
    key = site(request).config.secret.encode()
    data = "\0".join(f"{k}={fields.get(k, '')}" for k in _FLASH_FIELDS) + "\0" + staff.csrf
    return hmac.new(key, b"flash:" + data.encode(), hashlib.sha256).hexdigest()[:32]


_FLASH_FIELDS = ("msg", "error", "undo")


def _flash_url(request: web.Request, staff: Staff, *, msg: str | None = None, error: str | None = None,
               undo: int | None = None) -> str:
    """/console with a message (and an Undo) for a plain form post, signed for this session."""
    fields = {k: v for k, v in (("msg", msg), ("error", error), ("undo", None if undo is None else str(undo)))
              if v is not None}
    return "/console?" + urlencode({**fields, "sig": _flash_sig(request, staff, fields)}, quote_via=quote)


def _read_flash(request: web.Request, staff: Staff) -> tuple[str | None, str | None, str | None]:
    """(message, error, undo seq) from the query, only when the console signed them itself."""
    q = request.query
    fields = {k: q[k] for k in _FLASH_FIELDS if k in q}
    sent = q.get("sig", "")
    if not fields or not hmac.compare_digest(sent.encode(), _flash_sig(request, staff, fields).encode()):
        return None, None, None
    undo = fields.get("undo")
    return fields.get("msg"), fields.get("error"), undo if undo and undo.isdigit() else None


# -- overrides ----------------------------------------------------------------------------------


def action(handler: Callable[[web.Request, Staff], Awaitable[tuple[str, int | None]]]) -> Handler:
    """A console override: signed in, CSRF checked; answers JSON to the page's script, or a
    redirect back to the console (with the message and an Undo) to a plain form post."""

    @staff_post
    async def wrapped(request: web.Request) -> web.StreamResponse:
        staff = request[STAFF]
        try:
            message, seq = await handler(request, staff)
        except WaitroomError as e:
            if wants_json(request):
                return web.json_response(e.to_json(), status=e.status)
            raise web.HTTPSeeOther(_flash_url(request, staff, error=e.message)) from e
        if wants_json(request):
            return web.json_response({"ok": True, "message": message, "undo": seq})
        raise web.HTTPSeeOther(_flash_url(request, staff, msg=message, undo=seq))

    return wrapped


async def _form(request: web.Request) -> dict[str, str]:
    return {k: v.strip() for k, v in (await request.post()).items() if isinstance(v, str)}


async def _post(request: web.Request, staff: Staff, ev: Event) -> int:
    rt = site(request).runtime
    return await rt.post_event(ev, staff.actor, request.app[CLOCK].now())


async def _vet_name(request: web.Request, vet: str) -> str:
    async with site(request).store.read() as q:
        name = await q.vet_name(vet)
    if name is None:
        raise BadRequest(f"vet: unknown vet {vet!r}", "vet")
    return name


def _minutes(value: str, field: str, low: int, high: int) -> int:
    try:
        n = int(value)
    except ValueError as e:
        raise BadRequest(f"{field}: expected a whole number of minutes", field) from e
    if not low <= n <= high:
        raise BadRequest(f"{field}: expected {low} to {high} minutes", field)
    return n


@action
async def declare_emergency(request: web.Request, staff: Staff) -> tuple[str, int | None]:
    form = await _form(request)
    vet = form.get("vet", "")
    name = await _vet_name(request, vet)
    minutes = _minutes(form.get("minutes") or "45", "minutes", 5, 240)
    pet = form.get("pet", "")[:60] or None
    now = request.app[CLOCK].now()
    ev = Event("emergency", now, f"e-{secrets.token_hex(4)}", {"vet": vet, "expected_min": float(minutes), "pet": pet})
    rt = site(request).runtime
    async with site(request).store.transaction() as tx:
        seq = await apply_event(tx, ev, staff.actor, rt.clinic.tz, now)
        texts = await rt.after_change(tx)  # one text per phone: each row is one client told
    told = ("no client needed a text yet" if not texts else
            "1 client is being texted about the delay" if len(texts) == 1 else
            f"{len(texts)} clients are being texted about the delay")
    return f"Emergency declared for {name} ({minutes} min): {told}.", seq


@action
async def vet_late(request: web.Request, staff: Staff) -> tuple[str, int | None]:
    form = await _form(request)
    vet = form.get("vet", "")
    name = await _vet_name(request, vet)
    rt = site(request).runtime
    now = request.app[CLOCK].now()
    if form.get("minutes"):
        until = now + timedelta(minutes=_minutes(form["minutes"], "minutes", 1, 480))
    elif form.get("until"):
        try:
            clock_time = time.fromisoformat(form["until"])
        except ValueError as e:
            raise BadRequest("until: expected a time like 10:30", "until") from e
        until = datetime.combine(rt.today(now), clock_time, rt.clinic.tz)
        if until <= now:
            raise BadRequest("until: that time has passed", "until")
    else:
        raise BadRequest("minutes: give the minutes late or the time the vet is back", "minutes")
    reason = form.get("reason", "")[:60] or None
    seq = await _post(request, staff, Event("vet_late", now, None, {"vet": vet, "until": to_db(until),
                                                                     "reason": reason}))
    return f"{name} away until {hm(until, rt.clinic.tz)}.", seq


@action
async def vet_title_set(request: web.Request, staff: Staff) -> tuple[str, int | None]:
    """A vet's title for Spanish sentences ("con la Dra. Ana Ruiz"): Dr., Dra. or none."""
    form = await _form(request)
    vet = form.get("vet", "")
    name = await _vet_name(request, vet)
    given = form.get("title", "")
    title = None if given in ("", "none") else formats.title_of(given)
    if given not in ("", "none") and title is None:
        raise BadRequest("title: expected Dr., Dra. or none", "title")
    rt = site(request).runtime
    now = request.app[CLOCK].now()
    async with site(request).store.transaction() as tx:
        titles = (await tx.clinic()).settings.get("vet_titles")
        previous = titles.get(vet) if isinstance(titles, dict) else None
        await save_vet_title(tx, vet, title)
        # In the log with who set it (Recent actions shows it), in the change's transaction.
        await apply_event(tx, Event("vet_title", now, None, {"vet": vet, "title": title, "previous": previous}),
                          staff.actor, rt.clinic.tz, now)
        await rt.after_change(tx)
    await rt.reload_clinic()
    if title is None:
        return f"{name}: no title in Spanish sentences.", None
    return f"{name} is {formats.vet_es(name, title)} in Spanish.", None


@action
async def vet_available(request: web.Request, staff: Staff) -> tuple[str, int | None]:
    vet = request.match_info["vet"]
    name = await _vet_name(request, vet)
    seq = await _post(request, staff, Event("vet_available", request.app[CLOCK].now(), None, {"vet": vet}))
    return f"{name} is available.", seq


async def _visit(request: web.Request, vid: str) -> dict[str, Any]:
    async with site(request).store.read() as q:
        found = await q.visit_contact(vid)
    if found is None:
        raise NotFound(f"unknown visit {vid!r}", "appointment")
    return asdict(found)


@action
async def visit_action(request: web.Request, staff: Staff) -> tuple[str, int | None]:
    vid, what = request.match_info["id"], request.match_info["action"]
    v = await _visit(request, vid)
    pet = v["pet"] or "the visit"
    now = request.app[CLOCK].now()
    simple = {"checkin": "checkin", "start": "start", "end": "end", "noshow": "noshow"}
    if what in simple:
        kind = simple[what]
        if v["kind"] == "emergency" and kind in ("start", "end"):
            kind = f"emergency_{kind}"
        seq = await _post(request, staff, Event(kind, now, vid))
        done = {"checkin": "checked in", "start": "in consult", "end": "done", "noshow": "marked a no-show"}[what]
        msg = f"{pet} {done}."
        if what == "checkin":
            # "Secret service": what the desk should know as the client walks up.
            about = " ".join(x for x in (v["sex"] if v["sex"] != "unknown" else None, v["species"]) if x)
            msg += (f" {pet} is a {about}." if about else "") + (f" Note: {v['notes']}" if v["notes"] else "")
        return msg, seq
    if what in ("up", "down"):
        return await _reorder(request, staff, v, what == "up")
    if what == "move":
        vet = (await _form(request)).get("vet", "")
        name = await _vet_name(request, vet)
        seq = await _post(request, staff, Event("move", now, vid, {"vet": vet}))
        return f"{pet} moved to {name}.", seq
    if what in ("pause-texts", "resume-texts"):
        if not v["client_id"]:
            raise Conflict("texts: this visit has no client on file", "appointment")
        kind = what.replace("-", "_")
        seq = await _post(request, staff, Event(kind, now, vid, {"client": v["client_id"]}))
        return f"Texts {'paused' if kind == 'pause_texts' else 'resumed'} for {v['client']}.", seq
    if what == "text":
        body = (await _form(request)).get("body", "")
        return await _send_text(request, staff, v, body)
    if what == "recovery":
        return await _recovery(request, staff, v)
    raise NotFound(f"unknown action {what!r}", "action")


async def _reorder(request: web.Request, staff: Staff, v: dict[str, Any], up: bool) -> tuple[str, int | None]:
    """Swap a waiting client with the one before (after) them in their vet's predicted order.

    The estimator serves visits with a priority before their peers, lower first; giving the
    whole waiting line explicit priorities 1..n pins the order reception chose.
    """
    if v["status"] != "waiting" or v["kind"] == "emergency":
        raise Conflict("move: only a checked-in client still waiting can move up or down", "appointment")
    board = await load_board(site(request).runtime, request.app[CLOCK].now())
    lane = board.lane(v["vet_id"])
    line = [w.id for w in (lane.waiting if lane else []) if w.kind != "emergency"]
    i = line.index(v["id"])
    j = i - 1 if up else i + 1
    if not 0 <= j < len(line):
        raise Conflict(f"move: {v['pet']} is already {'first' if up else 'last'} in line", "appointment")
    before = list(line)
    line[i], line[j] = line[j], line[i]
    priorities = {w: float(k + 1) for k, w in enumerate(line)}
    await _refuse_a_move_the_rule_ignores(request, board, v["vet_id"], before, priorities)
    data = {"vet": v["vet_id"], "direction": "up" if up else "down", "priorities": priorities}
    seq = await _post(request, staff, Event("reorder", request.app[CLOCK].now(), v["id"], data))
    return f"{v['pet']} moved {'up' if up else 'down'}.", seq


async def _refuse_a_move_the_rule_ignores(request: web.Request, board: Board, vet: str, before: list[str],
                                          priorities: dict[str, float]) -> None:
    """Conflict when the new priorities would not change who the vet takes first: the
    estimator's dispatch rule (the board's line) starts nobody more than EARLY_START_MIN before
    their booking, so a client booked later cannot be put before one due now. Saying "moved up"
    while the line and every estimate stay as they were would mislead the desk."""
    rt = site(request).runtime
    state = await rt.day_state(rt.today(board.now))
    trial = DayState(vets=state.vets, visits={vid: replace(x, priority=priorities.get(vid, x.priority))
                                              for vid, x in state.visits.items()},
                     vet_unavailable_until=state.vet_unavailable_until, blocks=state.blocks)
    order = await asyncio.to_thread(dispatch_order, trial, order_time(board.now))
    after = [vid for vid in order.get(vet, []) if vid in priorities]
    if after != before:
        return
    # The client who was to go ahead, and why they cannot yet.
    ahead = next(vid for vid in before if priorities[vid] - 1 < before.index(vid))
    x = board.visits[ahead]
    if x.scheduled is not None and x.scheduled - timedelta(minutes=EARLY_START_MIN) > board.now:
        raise Conflict(f"move: {x.pet} is booked for {formats.clock(x.scheduled, board.tz)}, and the vet takes "
                       f"nobody more than {EARLY_START_MIN:g} minutes early: they go ahead from "
                       f"{formats.clock(x.scheduled - timedelta(minutes=EARLY_START_MIN), board.tz)}", "appointment")
    raise Conflict(f"move: {x.pet} cannot be taken sooner: the line stays as it is", "appointment")


def _wake_notifier(request: web.Request) -> None:
    """After committing outbox rows: the worker sends them now, not at its next poll."""
    wake = site(request).runtime.on_texts
    if wake is not None:
        wake()


async def _queue_text(conn: Any, to: str, body: str, visit_id: str | None, now: datetime) -> int:
    """Put a one-off text in the notifier's outbox (sent by its worker after commit)."""
    from notifier.messages import segment_count
    from notifier.outbox import NewText, enqueue

    ids = await enqueue(conn, [NewText(dedupe_key=f"console:{secrets.token_hex(8)}", to_number=to, body=body,
                                       kind="oneoff", visit_id=visit_id, segments=segment_count(body))], now)
    if not ids:
        raise Conflict("text: this number has opted out of texts (they can reply START)", "body")
    return ids[0]


async def _send_text(request: web.Request, staff: Staff, v: dict[str, Any], body: str) -> tuple[str, int | None]:
    if not body or len(body) > 320:
        raise BadRequest("body: write a message of up to 320 characters", "body")
    if not v["mobile"]:
        raise Conflict("text: no mobile number on file", "body")
    if not v["sms_consent"]:
        raise Conflict("text: this client has not agreed to texts", "body")
    kind = line_kind(v["mobile"])
    if kind is not None:
        raise Conflict(f"text: the number on file is a {kind} and cannot take texts: phone the client", "body")
    rt = site(request).runtime
    now = request.app[CLOCK].now()
    async with site(request).store.transaction() as tx:
        outbox_id = await _queue_text(tx, v["mobile"], body, v["id"], now)
        seq = await apply_event(tx, Event("send_text", now, v["id"], {"client": v["client_id"], "body": body,
                                                                       "outbox_id": outbox_id}),
                                staff.actor, rt.clinic.tz, now)
        await rt.after_change(tx)
    return f"Text to {v['client']} queued.", seq


async def _recovery(request: web.Request, staff: Staff, v: dict[str, Any]) -> tuple[str, int | None]:
    from notifier.recovery import RecoveryOffer, record_offer

    rt = site(request).runtime
    now = request.app[CLOCK].now()
    board = await load_board(rt, now)
    view = board.visits.get(v["id"])
    if view is None or view.recovery is None:
        raise Conflict("recovery: no gesture is owed to this visit", "appointment")
    async with site(request).store.transaction() as tx:
        await record_offer(tx, RecoveryOffer(v["id"], view.recovery, view.past_min), now)
        seq = await apply_event(tx, Event("ack", now, v["id"], {"recovery": v["id"]}), staff.actor,
                                rt.clinic.tz, now)
        await rt.after_change(tx)
    return f"Recorded: {view.recovery} offered to {v['client'] or v['pet']}.", seq


@action
async def texts_clinic(request: web.Request, staff: Staff) -> tuple[str, int | None]:
    pause = request.match_info["what"] == "pause"
    seq = await _post(request, staff, Event("pause_texts" if pause else "resume_texts", request.app[CLOCK].now(),
                                            None, {"client": None}))
    return ("All automatic texts paused." if pause else "Texts resumed."), seq


@action
async def undo(request: web.Request, staff: Staff) -> tuple[str, int | None]:
    seq = _url_int(request, "seq", "action")
    await _post(request, staff, Event("undo", request.app[CLOCK].now(), None, {"seq": seq}))
    return "Undone.", None


@action
async def ack_alert(request: web.Request, staff: Staff) -> tuple[str, int | None]:
    seq = _url_int(request, "seq", "alert")
    async with site(request).store.read() as q:
        alert = await q.event(seq)
    if alert is None or alert.type not in ALERT_TYPES:
        raise NotFound("no such alert", "seq")
    ack = await _post(request, staff, Event("ack", request.app[CLOCK].now(), None, {"seq": seq}))
    return "Alert marked as handled.", ack


@action
async def inbox_action(request: web.Request, staff: Staff) -> tuple[str, int | None]:
    from notifier.replies import mark_handled

    mid, what = _url_int(request, "id", "message"), request.match_info["what"]
    async with site(request).store.read() as q:
        sender = await q.inbound_sender(mid)
    if sender is None:
        raise NotFound("no such message", "id")
    from_number, visit_id = sender
    body = (await _form(request)).get("body", "") if what == "reply" else ""
    if what == "reply" and (not body or len(body) > 320):
        raise BadRequest("body: write a reply of up to 320 characters", "body")
    rt = site(request).runtime
    now = request.app[CLOCK].now()
    async with site(request).store.transaction() as tx:
        if what == "reply":
            # They texted us: answering them is expected, so no separate consent check here.
            outbox_id = await _queue_text(tx, from_number, body, visit_id, now)
            await mark_handled(tx, mid, now)
            seq = await apply_event(tx, Event("send_text", now, visit_id,
                                              {"inbound": mid, "body": body, "outbox_id": outbox_id}),
                                    staff.actor, rt.clinic.tz, now)
            await rt.after_change(tx)
            return "Reply queued.", seq
        await mark_handled(tx, mid, now)
        seq = await apply_event(tx, Event("ack", now, visit_id, {"inbound": mid}), staff.actor,
                                rt.clinic.tz, now)
        await rt.after_change(tx)
    return "Marked as handled.", seq


@action
async def text_decision(request: web.Request, staff: Staff) -> tuple[str, int | None]:
    """Reception's call on a text the notifier could not settle (held: unknown if it reached
    the client; failed: refused). `resend` queues it again and wakes the worker; `drop`
    (held) and `dismiss` (failed) take it off the list unsent. Either way the log says who."""
    from notifier import outbox

    row_id, what = _url_int(request, "id", "text"), request.match_info["what"]
    rt = site(request).runtime
    now = request.app[CLOCK].now()
    async with site(request).store.transaction() as conn:
        row = await conn.outbox_row(row_id)
        if row is None:
            raise NotFound(f"no text number {row_id}: reload the page for the current list", "id")
        found = await texts_for_reception(conn, rt.clinic.region, row_id=row_id)
        if not found:
            now_is = {"queued": "queued to send", "sending": "being sent", "failed": "off the list"}
            raise Conflict(f"this text was dealt with already (it is {now_is.get(row.status, row.status)} "
                           f"now): nothing was changed", "id")
        t = found[0]
        who = t.client or t.number
        if what == "resend":
            if not t.can_resend:
                raise Conflict("text: this number has opted out of texts (they can reply START)", "id")
            await outbox.resolve_held(conn, row_id, True, now)
            decision = "resend"
        elif t.status == "held":
            # "Don't send" or "Dismiss" both mean: not this text. The row's state now decides
            # how (a late status callback may have turned held into failed meanwhile).
            await outbox.resolve_held(conn, row_id, False, now)
            decision = "drop"
        else:
            await outbox.dismiss_failed(conn, row_id, now)
            decision = "dismiss"
        # Who decided, in the log. Not an undoable override: a resend is with Twilio within a
        # second (the worker is woken), and server/events.py has no undo for a drop or dismiss.
        # The row's state and reason as reception saw them are kept here, for the record.
        await apply_event(conn, Event("text_decision", now, None, {
            "outbox": row_id, "decision": decision, "visit": t.visit_id, "status": t.status,
            "reason": t.reason, "detail": t.detail, "to": t.to_number}), staff.actor, rt.clinic.tz, now)
        await rt.after_change(conn)
    if decision == "resend":
        _wake_notifier(request)
        if t.never_sent:
            return f"Sending the text to {who}.", None
        return (f"Sending the text to {who} again." if t.status == "held"
                else f"Trying the text to {who} again."), None
    if decision == "drop":
        return f"Not sending it. Please phone {t.client or 'them'} on {t.number}.", None
    return f"Dismissed the failed text to {who}.", None


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/login", login_page)
    r.add_post("/login", login_post)
    r.add_post("/logout", logout_post)
    r.add_get("/console", console_page)
    r.add_get("/console/live", console_live)
    r.add_post("/console/emergency", declare_emergency)
    r.add_post("/console/vet-late", vet_late)
    r.add_post("/console/vet-title", vet_title_set)
    r.add_post("/console/vets/{vet}/available", vet_available)
    r.add_post("/console/visits/{id}/{action}", visit_action)
    r.add_post("/console/texts/{what:pause|resume}", texts_clinic)
    r.add_post("/console/undo/{seq:\\d+}", undo)
    r.add_post("/console/alerts/{seq:\\d+}/ack", ack_alert)
    r.add_post("/console/inbox/{id:\\d+}/{what:reply|done}", inbox_action)
    r.add_post("/console/outbox/{id:\\d+}/{what:resend|drop|dismiss}", text_decision)
    r.add_post("/console/pms/{id:\\d+}/{what:done|retry}", action(pms_write_decision))

