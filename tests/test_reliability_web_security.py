"""Web security: every non-/api route × every kind of caller, client links, page headers.

The route list comes from the app's own router (with the Twilio webhooks mounted), so a new
page or form is covered the day it is added: a route missing from `EXPECT` fails the test
until someone says who may use it. The /api routes have their own matrix
(`tests/test_reliability_security.py`, from the OpenAPI document). Login lockout and the
console's CSRF checks are in `tests/test_web_console.py`
(`test_five_failures_lock_the_account_for_15_minutes`, `test_override_without_csrf_token_is_forbidden`,
`test_login_form_without_csrf_is_refused`) and are not repeated here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from notifier.links import make_token, status_token
from notifier.twilio_signature import compute_signature
from server.app import create_app
from server.config import Config, ManualClock
from server.web.auth import SESSION_COOKIE
from tests import dbq
from tests.conftest import ROLES, START, link_secret, seed_clinic
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.test_web_console import add_user, log_in

SECRET = "test-secret"
PUBLIC = "http://clinic.test"
A = "2026-03-02-v1-0800"  # Luna, Dr. Ruiz at 8:00
B = "2026-03-02-v2-0935"  # Luna again, another visit: for cross-visit links
STAFF, LINK, TWILIO = "staff", "link holder", "twilio"
CALLERS = ("none", *ROLES, STAFF, LINK, TWILIO)

# (method, route as the router names it) -> (who may use it, the path to call, form data).
# "link holder" holds a valid signed link for the route; everyone else calls it with a forged
# one. "twilio" signs the webhook with the auth token. A display token opens /display by
# `?token=` (every caller passes its own token that way too), the others by header.
EXPECT: dict[tuple[str, str], tuple[frozenset[str], str, dict[str, str]]] = {
    ("GET", "/"): (frozenset(CALLERS), "/", {}),
    ("GET", "/login"): (frozenset(CALLERS), "/login", {}),
    ("POST", "/login"): (frozenset({STAFF}), "/login", {}),
    ("GET", "/console"): (frozenset({STAFF}), "/console", {}),
    ("GET", "/console/live"): (frozenset({STAFF}), "/console/live", {}),
    ("POST", "/console/emergency"): (frozenset({STAFF}), "/console/emergency", {"vet": "v3", "minutes": "20"}),
    ("POST", "/console/vet-late"): (frozenset({STAFF}), "/console/vet-late", {"vet": "v2", "minutes": "10"}),
    ("POST", "/console/vet-title"): (frozenset({STAFF}), "/console/vet-title", {"vet": "v2", "title": "Dr."}),
    ("POST", "/console/vets/{vet}/available"): (frozenset({STAFF}), "/console/vets/v2/available", {}),
    ("POST", "/console/visits/{id}/{action}"): (frozenset({STAFF}), f"/console/visits/{A}/checkin", {}),
    ("POST", "/console/texts/{what}"): (frozenset({STAFF}), "/console/texts/pause", {}),
    ("POST", "/console/undo/{seq}"): (frozenset({STAFF}), "/console/undo/1", {}),
    ("POST", "/console/alerts/{seq}/ack"): (frozenset({STAFF}), "/console/alerts/1/ack", {}),
    ("POST", "/console/inbox/{id}/{what}"): (frozenset({STAFF}), "/console/inbox/1/done", {}),
    ("POST", "/console/outbox/{id}/{what}"): (frozenset({STAFF}), "/console/outbox/1/dismiss", {}),
    ("POST", "/console/pms/{id}/{what}"): (frozenset({STAFF}), "/console/pms/1/done", {}),
    ("GET", "/console/reports"): (frozenset({STAFF}), "/console/reports", {}),
    # The group page: a group admin's only (PostgreSQL, tests/test_postgres_group.py); a clinic's staff get 403.
    ("GET", "/group"): (frozenset(), "/group", {}),
    ("GET", "/console/reports/{name}.csv"): (frozenset({STAFF}), "/console/reports/defects.csv", {}),
    ("GET", "/console/reports/{name}.svg"): (frozenset({STAFF}), "/console/reports/waits.svg", {}),
    ("POST", "/console/reports/notes"): (frozenset({STAFF}), "/console/reports/notes",
                                         {"visit": A, "note": "phoned"}),
    ("GET", "/display"): (frozenset({"display", "reception"}), "/display", {}),
    ("GET", "/display/live"): (frozenset({"display", "reception"}), "/display/live", {}),
    # No lobby call is current here, so nobody gets a sound (401 without a display token, 404
    # with one); tests/test_lobby_calls.py checks a display token gets a current call's sound.
    ("GET", "/display/call/{id}.wav"): (frozenset(), "/display/call/" + "0" * 20 + ".wav", {}),
    ("GET", "/s/{token}"): (frozenset({LINK}), "/s/{token}", {}),
    ("GET", "/s/{token}/live"): (frozenset({LINK}), "/s/{token}/live", {}),
    ("POST", "/s/{token}/car"): (frozenset({LINK}), "/s/{token}/car", {}),
    ("GET", "/r/{token}"): (frozenset({LINK}), "/r/{token}", {}),
    ("POST", "/r/{token}"): (frozenset({LINK}), "/r/{token}", {"action": "book"}),
    ("POST", "/sms/inbound"): (frozenset({TWILIO}), "/sms/inbound",
                               {"MessageSid": "SM" + "7" * 32, "From": "+13125550199", "To": "+13125550100",
                                "Body": "hello", "AccountSid": ACCOUNT_SID}),
    ("POST", "/sms/status"): (frozenset({TWILIO}), "/sms/status",
                              {"MessageSid": "SM" + "8" * 32, "MessageStatus": "delivered",
                               "AccountSid": ACCOUNT_SID}),
    ("GET", "/static"): (frozenset(CALLERS), "/static/waitroom.css", {}),  # the static files
    ("GET", "/favicon.ico"): (frozenset(CALLERS), "/favicon.ico", {}),
    ("POST", "/logout"): (frozenset({STAFF}), "/logout", {}),  # last: it ends the staff session
}


@dataclass
class Site:
    client: TestClient[Any, Any]
    tokens: dict[str, str]
    clock: ManualClock
    db: str  # the clinic's --db spec
    key: str  # what the app signs this clinic's links with (conftest's link_secret)
    session: str = ""
    csrf: str = ""


@pytest.fixture
async def site(clinic_db: str) -> AsyncIterator[Site]:
    db = clinic_db
    tokens = await seed_clinic(db)
    await add_user(db)
    clock = ManualClock(START)
    config = Config(db_path=str(db), clock=clock, secret=SECRET, public_url=PUBLIC, sms_provider="twilio",
                    twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN, twilio_from="+13125550100",
                    run_notifier=False)
    async with TestClient(TestServer(create_app(config))) as client:
        s = Site(client, tokens, clock, db, link_secret(db, SECRET))
        assert (await log_in(client)).status == 303
        s.session = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
        page = await (await client.get("/console")).text()
        m = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
        assert m
        s.csrf = m.group(1)
        client.session.cookie_jar.clear()  # each request below carries exactly its caller's credentials
        yield s


def _routes(site: Site) -> set[tuple[str, str]]:
    app = site.client.app
    assert app is not None
    out = set()
    for resource in app.router.resources():
        canonical = resource.canonical
        if canonical.startswith("/api/"):
            continue
        for route in resource:
            if route.method != "HEAD":
                # The router writes regex parts into the canonical name: {seq:\d+} -> {seq}.
                out.add((route.method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", canonical)))
    return out


async def _call(site: Site, caller: str, method: str, route: str, path: str, data: dict[str, str]) -> Any:
    site.client.session.cookie_jar.clear()  # only the credentials this caller holds, nothing left from before
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    body = dict(data)
    if caller in ROLES:
        headers["Authorization"] = f"Bearer {site.tokens[caller]}"
        params["token"] = site.tokens[caller]
    if caller == STAFF:
        headers["Cookie"] = f"{SESSION_COOKIE}={site.session}"
        if method == "POST":
            body["csrf"] = site.csrf
        if route == "/login":
            page = await site.client.get("/login")
            login_csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
            assert login_csrf
            body.update(name="ana", password="correct horse battery", csrf=login_csrf.group(1))
            headers = {"Cookie": f"wr_login_csrf={page.cookies['wr_login_csrf'].value}"}
    if "{token}" in path:
        if caller == LINK:
            token = status_token(site.key, A) if path.startswith("/s/") else make_token(site.key.encode(), A,
                                                                                      site.clock.now())
        else:
            token = "QV8w.forged-signature-000000"
        path = path.replace("{token}", token)
        if caller == LINK and method == "POST" and path.startswith("/s/"):
            body["csrf"] = _car_csrf(site.key, token)  # what the page's form holds once the client is waiting
        elif caller == LINK and method == "POST":
            page = await site.client.get(path, params={"cancel": "1"})
            found = re.search(r'name="csrf" value="([^"]+)"', await page.text())
            assert found, f"no CSRF field on {path}"
            body["csrf"] = found.group(1)
    if caller == TWILIO:
        headers["X-Twilio-Signature"] = compute_signature(AUTH_TOKEN, f"{PUBLIC}{path}", body)
    resp = await site.client.request(method, path, headers=headers, params=params,
                                     data=body if method == "POST" else None, allow_redirects=False)
    return resp


async def _staff_session_alive(site: Site) -> bool:
    site.client.session.cookie_jar.clear()
    resp = await site.client.get("/console", headers={"Cookie": f"{SESSION_COOKIE}={site.session}"},
                                 allow_redirects=False)
    return resp.status == 200


def _car_csrf(key: str, token: str) -> str:
    """The status page's "waiting in the car" form token: a MAC of its own link (server/web/public.py)."""
    return hmac.new(key.encode(), b"car:" + token.encode(), hashlib.sha256).hexdigest()[:32]


def _got_through(resp: Any) -> bool:
    """Past the door: an answer, or a redirect anywhere but the login page. A 4xx for the
    request's content (400 bad form, 404 no such alert, 409) still got through, except the
    refusals: 401/403, and 404/410 which is how a forged or dead link is refused."""
    if resp.status in (401, 403, 404, 410):
        return False
    if resp.status in (301, 302, 303, 307):
        return not resp.headers.get("Location", "").startswith("/login")
    return resp.status < 500


async def test_every_web_route_admits_exactly_its_callers(site: Site) -> None:
    routes = _routes(site)
    unknown = routes - set(EXPECT)
    assert not unknown, f"routes with no entry in EXPECT (say who may use them): {sorted(unknown)}"
    gone = set(EXPECT) - routes
    assert not gone, f"EXPECT lists routes the app no longer has: {sorted(gone)}"
    wrong = []
    for (method, route), (allowed, path, data) in EXPECT.items():
        for caller in CALLERS:
            alive_before = route == "/logout" and await _staff_session_alive(site)
            resp = await _call(site, caller, method, route, path, data)
            ok = _got_through(resp)
            text = "" if "live" in path or path.endswith(".ico") else (await resp.text())[:120]
            resp.close()  # the live streams never end by themselves
            if route == "/logout":  # it answers everyone with the login page: did it end the session?
                ok = alive_before and not await _staff_session_alive(site)
            assert resp.status < 500, f"{method} {path} as {caller}: {resp.status} {text}"
            if ok != (caller in allowed):
                wrong.append(f"{method} {path} as {caller}: {resp.status} {resp.headers.get('Location', '')} "
                             f"{text!r}")
    assert not wrong, "\n".join(wrong)


# -- client links ----------------------------------------------------------------------------------


async def test_forged_expired_reused_and_cross_visit_links_are_refused(site: Site) -> None:
    c = site.client
    now = site.clock.now()
    # Reschedule links: forged (another secret), expired, reused, and one visit's form posted to another.
    assert (await c.get(f"/r/{make_token(b'another-secret', A, now)}")).status == 404
    assert (await c.get(f"/r/{make_token(site.key.encode(), A, now - timedelta(days=2))}")).status == 410
    link_a, link_b = f"/r/{make_token(site.key.encode(), A, now)}", f"/r/{make_token(site.key.encode(), B, now)}"
    page_a = await (await c.get(link_a, params={"cancel": "1"})).text()
    csrf_a = re.search(r'name="csrf" value="([^"]+)"', page_a)
    assert csrf_a
    cross = await c.post(link_b, data={"csrf": csrf_a.group(1), "action": "cancel"})
    assert cross.status == 403
    assert (await c.post(link_a, data={"csrf": csrf_a.group(1), "action": "cancel"})).status == 200
    reused = await c.post(link_a, data={"csrf": csrf_a.group(1), "action": "cancel"})
    assert reused.status == 410
    assert (await c.get(link_a)).status == 410
    rows = await dbq.rows(site.db, "SELECT id, status FROM appointments WHERE id IN (?, ?)", A, B)
    assert dict((r[0], r[1]) for r in rows) == {A: "cancelled", B: "booked"}  # noqa: C402
    # Status links: forged, another visit's signature, a visit of another day, cross-visit CSRF.
    sig_a = status_token(site.key, A).split(".")[1]
    vid_b = status_token(site.key, B).split(".")[0]
    assert (await c.get(f"/s/{vid_b}.{sig_a}")).status == 404
    assert (await c.get(f"/s/{status_token('another-secret', B)}")).status == 404
    assert (await c.get(f"/s/{status_token(site.key, '2026-02-27/v1/0')}")).status == 404
    status_b = status_token(site.key, B)
    assert (await c.get(f"/s/{status_b}")).status == 200
    other = status_token(site.key, "2026-03-02-v3-0800")
    refused = await c.post(f"/s/{other}/car", data={"csrf": _car_csrf(site.key, status_b)}, allow_redirects=False)
    assert refused.status == 403
    mine = await c.post(f"/s/{other}/car", data={"csrf": _car_csrf(site.key, other)}, allow_redirects=False)
    assert mine.status == 303


# -- headers ---------------------------------------------------------------------------------------


async def test_pages_carry_a_strict_csp_and_client_links_send_no_referrer(site: Site) -> None:
    status_link = f"/s/{status_token(site.key, A)}"
    pages = {
        "/login": {},
        "/console": {"Cookie": f"{SESSION_COOKIE}={site.session}"},
        f"/display?token={site.tokens['display']}": {},
        status_link: {},
        f"/r/{make_token(site.key.encode(), A, site.clock.now())}": {},
        "/s/forged.link": {},  # error pages too
    }
    for path, headers in pages.items():
        resp = await site.client.get(path, headers=headers, allow_redirects=False)
        html = await resp.text()
        assert resp.status in (200, 404), (path, resp.status)
        csp = resp.headers.get("Content-Security-Policy", "")
        directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
        assert directives.get("script-src") == ["'self'"], (path, csp)  # no inline script, no eval
        assert directives.get("frame-ancestors") == ["'none'"], (path, csp)
        assert resp.headers.get("X-Frame-Options") == "DENY", path
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", path
        # What the CSP would block must not be on the page either (it would silently break).
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline <script> on {path}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"inline event handler on {path}"
        if path.startswith(("/s/", "/r/", "/display")):
            # The link's secret is in the URL: no other site may see it as a referrer.
            assert resp.headers.get("Referrer-Policy") == "no-referrer", path
            assert resp.headers.get("Cache-Control") == "no-store", path
