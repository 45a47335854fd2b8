"""Reception console: staff login, CSRF, lockout, every override route, undo, inbox, alerts, and
the texts the notifier could not settle ("Texts that need you") against a fake Twilio."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import pytest
from aiohttp import ClientSession, CookieJar, TCPConnector
from aiohttp.test_utils import TestClient, TestServer

from notifier import outbox
from server.app import RUNTIME, create_app
from server.config import Config, ManualClock
from server.keys import CLOCK
from server.sms import WORKER
from server.store import Clinic, open_store
from server.web.auth import check_password, create_user, hash_password
from server.web.board import load_board
from tests import dbq
from tests.conftest import START, Api, NewDb, eventually, seed_clinic
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.test_web_pages import read_sse

PASSWORD = "correct horse battery"
FETCH = {"X-Requested-With": "fetch"}
A_0800 = "2026-03-02-v1-0800"  # Luna (Maria Lopez, notes), Dr. Ruiz's first booking


async def add_user(db: str, name: str = "ana", password: str = PASSWORD) -> None:
    store = await open_store(str(db))
    try:
        async with store.transaction() as conn:
            await create_user(conn, name, password, START)
    finally:
        await store.close()


def form_csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


async def log_in(client: TestClient[Any, Any], name: str = "ana", password: str = PASSWORD) -> Any:
    page = await client.get("/login")
    csrf = form_csrf(await page.text())
    return await client.post("/login", data={"name": name, "password": password, "csrf": csrf},
                             allow_redirects=False)


@dataclass
class Desk:
    api: Api
    csrf: str

    @property
    def client(self) -> TestClient[Any, Any]:
        return self.api.client

    async def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
                   status: int = 200) -> Any:
        body = {**(data or {}), **({"csrf": self.csrf} if csrf else {})}
        resp = await self.client.post(path, data=body, headers=FETCH, allow_redirects=False)
        assert resp.status == status, await resp.text()
        return await resp.json() if resp.content_type == "application/json" else await resp.text()

    async def events(self, kind: str) -> list[dict[str, Any]]:
        return await dbq.dicts(self.api.db, "SELECT seq, type, appointment_id, data, actor FROM events WHERE type = ? "
                                            "ORDER BY seq", kind)

    async def appt(self, aid: str) -> Any:
        resp = await self.client.get(f"/api/appointments/{aid}", headers=self.api.h("reception"))
        return await resp.json()

    async def sql(self, q: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return await dbq.rows(self.api.db, q, *params)


@pytest.fixture
async def desk(api: Api) -> Desk:
    await add_user(api.db)
    resp = await log_in(api.client)
    assert resp.status == 303
    page = await api.client.get("/console")
    m = re.search(r'<meta name="csrf-token" content="([^"]+)"', await page.text())
    assert m
    return Desk(api, m.group(1))


# -- login, sessions, CSRF, lockout ---------------------------------------------------------


def test_password_hash_is_scrypt_and_salted() -> None:
    a, b = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert a.startswith("scrypt$") and a != b
    assert check_password("s3cret-pass", a) and not check_password("s3cret-pasS", a)


async def test_console_without_session_redirects_to_login(api: Api) -> None:
    resp = await api.client.get("/console", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")
    live = await api.client.get("/console/live")
    assert live.status == 401


async def test_login_sets_httponly_samesite_session_cookie(api: Api) -> None:
    await add_user(api.db)
    resp = await log_in(api.client)
    assert resp.status == 303 and resp.headers["Location"] == "/console"
    cookie = resp.cookies["wr_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
    page = await api.client.get("/console")
    assert page.status == 200 and "Dr. Ana Ruiz" in await page.text()


async def test_login_form_without_csrf_is_refused(api: Api) -> None:
    await add_user(api.db)
    await api.client.get("/login")
    resp = await api.client.post("/login", data={"name": "ana", "password": PASSWORD}, allow_redirects=False)
    assert resp.status == 403


async def test_login_form_with_a_non_ascii_csrf_token_is_refused_not_a_500(api: Api) -> None:
    await add_user(api.db)
    await api.client.get("/login")
    resp = await api.client.post("/login", data={"name": "ana", "password": PASSWORD, "csrf": "é" * 20},
                                 allow_redirects=False)
    assert resp.status == 403


async def test_wrong_password_is_refused(api: Api) -> None:
    await add_user(api.db)
    resp = await log_in(api.client, password="wrong password")
    assert resp.status == 401 and "Wrong name or password" in await resp.text()
    assert (await api.client.get("/console", allow_redirects=False)).status == 303


async def test_five_failures_lock_the_account_for_15_minutes(api: Api) -> None:
    await add_user(api.db)
    for _ in range(4):
        assert (await log_in(api.client, password="nope nope")).status == 401
    fifth = await log_in(api.client, password="nope nope")
    assert fifth.status == 429 and "locked" in await fifth.text()
    # Locked: even the right password is refused.
    assert (await log_in(api.client)).status == 429
    api.clock.advance(minutes=16)
    assert (await log_in(api.client)).status == 303


async def test_61_concurrent_guesses_check_five_and_the_right_one_gets_no_session(api: Api) -> None:
    # Each guess used to read "not locked" before any failure was written: all 61 were checked
    # and the right password (the 60th) signed in. Now each reserves its attempt first.
    await add_user(api.db)
    page = await api.client.get("/login")
    csrf = form_csrf(await page.text())
    guesses = [f"wrong guess {i}" for i in range(61)]
    guesses[59] = PASSWORD

    async def guess(password: str) -> int:
        resp = await api.client.post("/login", data={"name": "ana", "password": password, "csrf": csrf},
                                     allow_redirects=False)
        return resp.status

    statuses = await asyncio.gather(*(guess(p) for p in guesses))
    assert 303 not in statuses and set(statuses) <= {401, 429}
    assert statuses.count(401) + statuses.count(429) == 61
    desk = Desk(api, "")
    assert await desk.sql("SELECT count(*) FROM staff_sessions") == [(0,)]
    # Only LOCKOUT_FAILURES passwords were ever checked (each checked attempt is a row).
    assert await desk.sql("SELECT count(*) FROM login_attempts WHERE name = 'ana'") == [(5,)]


@asynccontextmanager
async def browser_at(api: Api, address: str, headers: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    """A browser on another machine: its connections come from `address` (127.0.0.0/8 is all ours)."""
    async with ClientSession(str(api.client.make_url("")), connector=TCPConnector(local_addr=(address, 0)),
                             cookie_jar=CookieJar(unsafe=True), headers=headers) as session:
        yield session


async def sign_in(session: ClientSession, name: str, password: str) -> tuple[int, str]:
    session.cookie_jar.clear()  # signed out: each try starts from the login form
    page = await session.get("/login")
    resp = await session.post("/login", data={"name": name, "password": password, "csrf": form_csrf(await page.text())},
                              allow_redirects=False)
    return resp.status, await resp.text()


async def test_a_stranger_cannot_lock_the_desk_out_or_guess_faster_over_many_names(api: Api) -> None:
    for name in ("ana", "ben", "cara"):
        await add_user(api.db, name)
    async with browser_at(api, "127.0.0.2") as stranger, browser_at(api, "127.0.0.1") as desk:
        for name in ("ana", "ben"):
            for _ in range(4):
                assert (await sign_in(stranger, name, "nope nope"))[0] == 401
            assert (await sign_in(stranger, name, "nope nope"))[0] == 429
        # Locked for the stranger, not for reception at the desk.
        assert (await sign_in(stranger, "ana", PASSWORD))[0] == 429
        assert (await sign_in(desk, "ana", PASSWORD))[0] == 303
        assert (await sign_in(desk, "ben", PASSWORD))[0] == 303
        # Ten failures from one address: no more guesses from it, whatever the name.
        status, text = await sign_in(stranger, "cara", PASSWORD)
        assert status == 429 and "from this computer" in text
        assert (await sign_in(desk, "cara", PASSWORD))[0] == 303
        api.clock.advance(minutes=16)
        assert (await sign_in(stranger, "cara", PASSWORD))[0] == 303


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(clinic_db: str, clock: ManualClock) -> None:
    db = clinic_db
    await seed_clinic(db)
    await add_user(db)
    for trusted in ((), ("127.0.0.1",)):
        config = Config(db_path=str(db), clock=clock, secret="s", public_url="http://clinic.test",
                        trusted_proxies=trusted)
        async with TestClient(TestServer(create_app(config))) as client:
            api = Api(client, {}, clock, db)
            for i in range(10):  # each from a "new address" the stranger makes up
                async with browser_at(api, "127.0.0.1", {"X-Forwarded-For": f"10.0.0.{i}"}) as stranger:
                    assert (await sign_in(stranger, "ana", "nope nope"))[0] in (401, 429)
            async with browser_at(api, "127.0.0.1", {"X-Forwarded-For": "10.0.0.99"}) as someone:
                status, _ = await sign_in(someone, "ana", PASSWORD)
        # Untrusted, the header is the stranger's word: all ten came from one address, locked.
        # Behind a trusted proxy each address had one failure: 10.0.0.99 signs in.
        assert status == (303 if trusted else 429)
        clock.advance(minutes=16)


async def test_logout_ends_the_session(desk: Desk) -> None:
    resp = await desk.client.post("/logout", data={"csrf": desk.csrf}, allow_redirects=False)
    assert resp.status == 303
    assert (await desk.client.get("/console", allow_redirects=False)).status == 303


async def test_next_parameter_cannot_redirect_off_site(api: Api) -> None:
    await add_user(api.db)
    page = await api.client.get("/login?next=//evil.example/x")
    csrf = form_csrf(await page.text())
    resp = await api.client.post("/login", data={"name": "ana", "password": PASSWORD, "csrf": csrf,
                                                 "next": "//evil.example/x"}, allow_redirects=False)
    assert resp.headers["Location"] == "/console"


@pytest.mark.parametrize("bad", ["/%0A/evil.example", "/%09/evil.example", "/%0D/evil.example",
                                 "%0A//evil.example", "/%5C/evil.example", "/%00/evil.example",
                                 "https://evil.example/", "/%E2%80%A8/evil.example"])
async def test_next_with_a_control_character_cannot_redirect_off_site(api: Api, bad: str) -> None:
    # Browsers drop tabs and newlines from a URL, so "/\n/evil.example" is "//evil.example":
    # another site. A signed-in user (GET) and a fresh sign-in (POST) both stay on this one.
    await add_user(api.db)
    assert (await log_in(api.client)).status == 303
    resp = await api.client.get(f"/login?next={bad}", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console", resp.headers["Location"]
    api.client.session.cookie_jar.clear()  # signed out: the login form carries `next` on
    page = await api.client.get(f"/login?next={bad}")
    csrf = form_csrf(await page.text())
    assert 'name="next" value="/console"' in await page.text()
    resp = await api.client.post("/login", data={"name": "ana", "password": PASSWORD, "csrf": csrf,
                                                 "next": unquote(bad)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console", resp.headers["Location"]


async def test_next_keeps_a_path_on_this_site(api: Api) -> None:
    await add_user(api.db)
    assert (await log_in(api.client)).status == 303
    resp = await api.client.get("/login?next=/console%3Fx%3D1", allow_redirects=False)
    assert resp.headers["Location"] == "/console?x=1"


# -- every override route: no session, no CSRF, display token ----------------------------------

ROUTES = [
    ("/console/emergency", {"vet": "v1", "minutes": "40"}),
    ("/console/vet-late", {"vet": "v2", "minutes": "20"}),
    ("/console/vet-title", {"vet": "v2", "title": "Dr."}),
    ("/console/vets/v1/available", {}),
    (f"/console/visits/{A_0800}/checkin", {}),
    (f"/console/visits/{A_0800}/start", {}),
    (f"/console/visits/{A_0800}/end", {}),
    (f"/console/visits/{A_0800}/noshow", {}),
    (f"/console/visits/{A_0800}/up", {}),
    (f"/console/visits/{A_0800}/down", {}),
    (f"/console/visits/{A_0800}/move", {"vet": "v2"}),
    (f"/console/visits/{A_0800}/pause-texts", {}),
    (f"/console/visits/{A_0800}/resume-texts", {}),
    (f"/console/visits/{A_0800}/text", {"body": "hello"}),
    (f"/console/visits/{A_0800}/recovery", {}),
    ("/console/texts/pause", {}),
    ("/console/texts/resume", {}),
    ("/console/undo/1", {}),
    ("/console/alerts/1/ack", {}),
    ("/console/inbox/1/reply", {"body": "hi"}),
    ("/console/inbox/1/done", {}),
    ("/console/outbox/1/resend", {}),
    ("/console/outbox/1/drop", {}),
    ("/console/outbox/1/dismiss", {}),
    ("/logout", {}),
]


@pytest.mark.parametrize(("path", "data"), ROUTES)
async def test_override_without_session_is_refused(api: Api, path: str, data: dict[str, str]) -> None:
    plain = await api.client.post(path, data=data, allow_redirects=False)
    assert plain.status == 303 and plain.headers["Location"].startswith("/login")
    scripted = await api.client.post(path, data=data, headers=FETCH)
    assert scripted.status == 401


@pytest.mark.parametrize(("path", "data"), ROUTES)
async def test_override_without_csrf_token_is_forbidden(desk: Desk, path: str, data: dict[str, str]) -> None:
    before = await desk.sql("SELECT COUNT(*) FROM events")
    await desk.post(path, data, csrf=False, status=403)
    assert await desk.sql("SELECT COUNT(*) FROM events") == before


@pytest.mark.parametrize(("path", "data"), ROUTES[:3])
async def test_display_token_cannot_post_overrides(api: Api, path: str, data: dict[str, str]) -> None:
    token = api.tokens["display"]
    for headers in ({"Authorization": f"Bearer {token}", **FETCH}, FETCH):
        resp = await api.client.post(f"{path}?token={token}", data=data, headers=headers)
        assert resp.status == 401
    # The reception API token is not a console session either.
    resp = await api.client.post(path, data=data, headers={**api.h("reception"), **FETCH})
    assert resp.status == 401


# -- what each override does ----------------------------------------------------------------


async def test_emergency_is_logged_with_who_and_undoable(desk: Desk) -> None:
    before = await (await desk.client.get("/api/estimates", headers=desk.api.h("reception"))).json()
    ans = await desk.post("/console/emergency", {"vet": "v1", "minutes": "60", "pet": "Rex"})
    assert ans["ok"] and ans["undo"]
    [ev] = await desk.events("emergency")
    assert ev["actor"] == "user:ana" and json.loads(ev["data"])["expected_min"] == 60
    during = await (await desk.client.get("/api/estimates", headers=desk.api.h("reception"))).json()
    assert during != before
    await desk.post(f"/console/undo/{ans['undo']}")
    assert (await desk.appt(ev["appointment_id"]))["status"] == "cancelled"
    # Twice is refused: it is undone already.
    assert "already undone" in (await desk.post(f"/console/undo/{ans['undo']}", status=409))["error"]


async def test_desk_checkin_shows_the_clients_notes(desk: Desk) -> None:
    ans = await desk.post(f"/console/visits/{A_0800}/checkin")
    assert "Luna is nervous with men" in ans["message"] and "female dog" in ans["message"]
    assert (await desk.appt(A_0800))["status"] == "waiting"
    page = await (await desk.client.get("/console")).text()
    assert "Luna is nervous with men" in page


async def test_start_end_noshow_and_undo_in_order(desk: Desk) -> None:
    c = await desk.post(f"/console/visits/{A_0800}/checkin")
    s = await desk.post(f"/console/visits/{A_0800}/start")
    # Undoing the check-in while the consult it led to still stands is refused.
    assert "undo that first" in (await desk.post(f"/console/undo/{c['undo']}", status=409))["error"]
    await desk.post(f"/console/undo/{s['undo']}")
    assert (await desk.appt(A_0800))["status"] == "waiting"
    n = await desk.post(f"/console/visits/{A_0800}/noshow")
    assert (await desk.appt(A_0800))["status"] == "noshow"
    await desk.post(f"/console/undo/{n['undo']}")
    assert (await desk.appt(A_0800))["status"] == "waiting"
    await desk.post(f"/console/visits/{A_0800}/start")
    await desk.post(f"/console/visits/{A_0800}/end")
    assert (await desk.appt(A_0800))["status"] == "done"
    assert "already finished" in (await desk.post(f"/console/visits/{A_0800}/start", status=409))["error"]


async def test_start_and_end_of_an_emergency(desk: Desk) -> None:
    await desk.post("/console/emergency", {"vet": "v2", "minutes": "30"})
    [ev] = await desk.events("emergency")
    eid = ev["appointment_id"]
    await desk.post(f"/console/visits/{eid}/start")
    await desk.post(f"/console/visits/{eid}/end")
    assert [e["type"] for e in await desk.events("emergency_end")] == ["emergency_end"]


async def test_move_up_and_down_pin_the_waiting_order(desk: Desk) -> None:
    first, second = "2026-03-02-v1-0800", "2026-03-02-v1-0820"
    day = await desk.sql("SELECT id FROM appointments WHERE vet_id = 'v1' AND day = '2026-03-02' "
                         "ORDER BY scheduled LIMIT 2")
    first, second = day[0][0], day[1][0]
    for aid in (first, second):
        await desk.post(f"/console/visits/{aid}/checkin")
    # At 7:50 the vet can take Max (8:20) no sooner than 8:15, Luna (8:00) from 7:55: moving Max
    # up would change neither the line nor any estimate, and the desk is told why.
    refused = await desk.post(f"/console/visits/{second}/up", status=409)
    assert "booked for 8:20 AM" in refused["error"] and "from 8:15 AM" in refused["error"]
    assert await desk.sql("SELECT seq FROM events WHERE type = 'reorder'") == []
    desk.api.clock.set(START.replace(hour=8, minute=16))  # both may start now
    up = await desk.post(f"/console/visits/{second}/up")
    prio = dict(await desk.sql("SELECT id, priority FROM appointments WHERE id IN (?, ?)", (first, second)))
    assert prio[second] < prio[first]
    assert "already first" in (await desk.post(f"/console/visits/{second}/up", status=409))["error"]
    await desk.post(f"/console/undo/{up['undo']}")
    prio = dict(await desk.sql("SELECT id, priority FROM appointments WHERE id IN (?, ?)", (first, second)))
    assert prio == {first: None, second: None}
    await desk.post(f"/console/visits/{first}/down")
    prio = dict(await desk.sql("SELECT id, priority FROM appointments WHERE id IN (?, ?)", (first, second)))
    assert prio[second] < prio[first]


async def test_move_to_another_vet_and_back(desk: Desk) -> None:
    ans = await desk.post(f"/console/visits/{A_0800}/move", {"vet": "v3"})
    assert (await desk.appt(A_0800))["vet"] == "v3"
    await desk.post(f"/console/undo/{ans['undo']}")
    assert (await desk.appt(A_0800))["vet"] == "v1"
    assert (await desk.post(f"/console/visits/{A_0800}/move", {"vet": "nobody"}, status=400))["field"] == "vet"


async def test_vet_late_and_available_are_undoable(desk: Desk) -> None:
    late = await desk.post("/console/vet-late", {"vet": "v2", "minutes": "30", "reason": "surgery ran over"})
    rows = await desk.sql("SELECT unavailable_until FROM vet_status WHERE vet_id = 'v2'")
    assert rows and rows[0][0] is not None
    page = await (await desk.client.get("/console")).text()
    assert "Away until 8:20 AM" in page
    await desk.post(f"/console/undo/{late['undo']}")
    assert (await desk.sql("SELECT unavailable_until FROM vet_status WHERE vet_id = 'v2'"))[0][0] is None
    await desk.post("/console/vet-late", {"vet": "v2", "until": "09:15"})
    avail = await desk.post("/console/vets/v2/available")
    assert (await desk.sql("SELECT unavailable_until FROM vet_status WHERE vet_id = 'v2'"))[0][0] is None
    await desk.post(f"/console/undo/{avail['undo']}")
    [(until,)] = await desk.sql("SELECT unavailable_until FROM vet_status WHERE vet_id = 'v2'")
    assert dbq.when(until) == datetime(2026, 3, 2, 15, 15, tzinfo=UTC)  # 09:15 in Chicago
    await desk.post("/console/vet-late", {"vet": "v2"}, status=400)


async def test_pause_texts_for_clinic_and_client_are_stored_for_the_notifier(desk: Desk) -> None:
    p = await desk.post("/console/texts/pause")
    assert await desk.sql("SELECT scope, client_id, paused_by FROM texts_paused") == [("clinic", "", "user:ana")]
    await desk.post(f"/console/undo/{p['undo']}")
    assert await desk.sql("SELECT * FROM texts_paused") == []
    await desk.post(f"/console/visits/{A_0800}/pause-texts")
    assert await desk.sql("SELECT scope, client_id FROM texts_paused") == [("client", "c1")]
    r = await desk.post(f"/console/visits/{A_0800}/resume-texts")
    assert await desk.sql("SELECT * FROM texts_paused") == []
    await desk.post(f"/console/undo/{r['undo']}")
    assert await desk.sql("SELECT scope, client_id FROM texts_paused") == [("client", "c1")]


async def test_one_off_text_is_queued_in_the_outbox_and_undo_cancels_it(desk: Desk) -> None:
    ans = await desk.post(f"/console/visits/{A_0800}/text", {"body": "Dr. Ruiz is running 10 min late"})
    [row] = await desk.sql("SELECT to_number, body, status, kind FROM outbox")
    assert tuple(row) == ("+13125550101", "Dr. Ruiz is running 10 min late", "queued", "oneoff")
    await desk.post(f"/console/undo/{ans['undo']}")
    assert (await desk.sql("SELECT status FROM outbox"))[0][0] == "failed"
    # Aiko Tanaka (c3) has not agreed to texts.
    [mochi] = await desk.sql("SELECT a.id FROM appointments a WHERE a.pet_id = 'p4' ORDER BY scheduled LIMIT 1")
    assert "not agreed" in (await desk.post(f"/console/visits/{mochi[0]}/text", {"body": "hi"}, status=409))["error"]


async def test_kiosk_urgent_help_is_shown_loudly_until_acknowledged(desk: Desk) -> None:
    resp = await desk.client.post("/api/kiosk/urgent", json={"idempotency_key": "urgent-0001", "note": "dog bleeding"},
                                  headers=desk.api.h("kiosk"))
    assert resp.status == 200
    page = await (await desk.client.get("/console")).text()
    assert 'role="alert"' in page and "URGENT HELP" in page and "dog bleeding" in page
    # Which kiosk (its token's name) and when (the clinic's clock: the test day starts at 07:50).
    assert re.search(r"URGENT HELP requested at kiosk test-kiosk at \d{1,2}:\d\d [AP]M: dog bleeding", page), page
    [ev] = await desk.events("urgent")
    await desk.post(f"/console/alerts/{ev['seq']}/ack")
    assert "URGENT HELP" not in await (await desk.client.get("/console")).text()


async def test_kiosk_unmatched_shows_in_the_alerts(desk: Desk) -> None:
    resp = await desk.client.post("/api/kiosk/lookup", json={"phone": "312-555-0199"}, headers=desk.api.h("kiosk"))
    assert resp.status == 200
    # Recorded just after the lookup answers (so an unknown number answers as fast as a known one).
    await eventually(lambda: desk.events("kiosk_unmatched"), "the unmatched number recorded")
    assert "phone ending 0199" in await (await desk.client.get("/console")).text()


async def test_inbox_shows_client_replies_and_sends_the_answer(desk: Desk) -> None:
    async with dbq.opened(desk.api.db) as store, store.transaction() as tx:
        for i, (body, kind, need) in enumerate([("Can I bring both dogs?", "other", True),
                                                ("2", "reschedule", False)]):
            assert await tx.record_inbound(f"SM{i}", "+13125550101", None, body, kind, need,
                                           datetime(2026, 3, 2, 13, 45, tzinfo=UTC))
            await tx.set_inbound_visit(f"SM{i}", A_0800, kind)
    page = await (await desk.client.get("/console")).text()
    assert "Can I bring both dogs?" in page and "wants to reschedule" in page and "Maria Lopez" in page
    [m1, m2] = await desk.sql("SELECT id FROM inbound_messages ORDER BY id")
    await desk.post(f"/console/inbox/{m1[0]}/reply", {"body": "Yes, of course!"})
    assert (await desk.sql("SELECT body FROM outbox"))[0][0] == "Yes, of course!"
    done = await desk.post(f"/console/inbox/{m2[0]}/done")
    assert "Can I bring both dogs?" not in await (await desk.client.get("/console")).text()
    await desk.post(f"/console/undo/{done['undo']}")
    assert (await desk.sql("SELECT handled_at FROM inbound_messages WHERE id = ?", (m2[0],)))[0][0] is None


async def test_recovery_gesture_prompt_when_waited_past_the_promise(desk: Desk) -> None:
    await dbq.set_settings(desk.api.db, replace=True, recovery_gesture="a free nail trim")
    # The running server reads clinic settings at start; reload them as a settings change would.
    assert desk.client.app is not None
    await desk.client.app[RUNTIME].reload_clinic()
    desk.api.clock.advance(minutes=5)
    await desk.post(f"/console/visits/{A_0800}/checkin")
    desk.api.clock.advance(minutes=40)  # 08:35: 35 minutes past the 08:00 booking
    page = await (await desk.client.get("/console")).text()
    assert "offer: <strong>a free nail trim</strong>" in page and "band-verylate" in page
    await desk.post(f"/console/visits/{A_0800}/recovery")
    assert "Offered: a free nail trim" in await (await desk.client.get("/console")).text()


async def test_form_post_without_script_redirects_back_with_message_and_undo(desk: Desk) -> None:
    resp = await desk.client.post(f"/console/visits/{A_0800}/checkin", data={"csrf": desk.csrf},
                                  allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console?msg=Luna")
    page = await (await desk.client.get(resp.headers["Location"])).text()
    assert "checked in" in flash(page) and "/console/undo/" in flash(page)
    bad = await desk.client.post(f"/console/visits/{A_0800}/checkin", data={"csrf": desk.csrf},
                                 allow_redirects=False)
    assert bad.status == 303 and "error=" in bad.headers["Location"]


async def test_a_link_cannot_put_words_or_an_undo_button_in_the_console(desk: Desk) -> None:
    # A link anyone can send to reception: its text must not appear as the console's own message.
    bait = "Server error: call 555-0100 now and read out your password"
    for query in (f"?msg={quote(bait)}&undo=1", f"?error={quote(bait)}", f"?msg={quote(bait)}&undo=1&sig=x"):
        page = await (await desk.client.get(f"/console{query}")).text()
        assert bait not in page and "undo" not in flash(page)
    # Nor can a message the console really gave be re-worded or given another action's Undo.
    resp = await desk.client.post(f"/console/visits/{A_0800}/checkin", data={"csrf": desk.csrf},
                                  allow_redirects=False)
    real = resp.headers["Location"]
    for forged in (real.replace("Luna", "Evil"), re.sub(r"undo=\d+", "undo=999", real)):
        assert forged != real
        page = await (await desk.client.get(forged)).text()
        assert "Evil" not in page and "undo" not in flash(page)
    # Another staff member following the link does not see it either (bound to the session).
    await add_user(desk.api.db, "ben")
    desk.client.session.cookie_jar.clear()
    assert (await log_in(desk.client, "ben")).status == 303
    assert "checked in" not in flash(await (await desk.client.get(real)).text())


def flash(page: str) -> str:
    """The console's message area (the Recent actions list has its own Undo buttons)."""
    m = re.search(r'<div id="flash".*?</div>', page, re.S)
    assert m, page[:300]
    return m.group(0)


async def test_console_page_carries_strict_security_headers(desk: Desk) -> None:
    resp = await desk.client.get("/console")
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert resp.headers["Referrer-Policy"] == "no-referrer" and resp.headers["Cache-Control"] == "no-store"
    assert "<script>" not in await resp.text() and " style=" not in await resp.text()


# -- texts that need you: held and failed texts, reception decides --------------------------------

MILO_0800 = "2026-03-02-v2-0800"  # Milo (Emma Rossi, +1 312 555 0110), Dr. Patel's first booking
HELD_BODY = "Riverside Animal Clinic: Dr. Ruiz is running about 20 min late. Luna should be seen 8:20-8:35."
FAILED_BODY = "Riverside Animal Clinic: Milo's vet is running late; we now expect 8:30-8:45."
LUNA_MOBILE, MILO_MOBILE = "+13125550101", "+13125550110"
HELD_WHY = "may or may not have been sent; the provider could not be asked (last error: 503 Service Unavailable)"


@dataclass
class TextingDesk(Desk):
    twilio: FakeTwilio

    def wake_worker(self) -> None:
        assert self.client.app is not None
        self.client.app[WORKER].wake()

    async def outbox_row(self, row_id: int) -> tuple[Any, ...]:
        [row] = await self.sql("SELECT status, error_code, error_message FROM outbox WHERE id = ?", (row_id,))
        return row

    async def received(self, to: str, body: str, *, within: float = 2.0) -> float:
        """Seconds until the fake Twilio holds `body` for `to` (fails after `within`)."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while body not in self.twilio.bodies_to(to):
            assert loop.time() - t0 < within, f"Twilio never got {body!r}: {self.twilio.accepted}"
            await asyncio.sleep(0.02)
        return loop.time() - t0


@pytest.fixture
async def texting(clinic_db: str, clock: ManualClock) -> AsyncIterator[TextingDesk]:
    """The console of a clinic that texts through a fake Twilio on loopback (the real worker)."""
    db = clinic_db
    tokens = await seed_clinic(db)
    await add_user(db)
    async with FakeTwilio() as twilio:
        config = Config(db_path=str(db), clock=clock, secret="test-secret", public_url="http://clinic.test",
                        sms_provider="twilio", twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                        twilio_from="+13125550100", twilio_base_url=twilio.base_url)
        async with TestClient(TestServer(create_app(config))) as client:
            assert (await log_in(client)).status == 303
            m = re.search(r'<meta name="csrf-token" content="([^"]+)"', await (await client.get("/console")).text())
            assert m
            yield TextingDesk(Api(client, tokens, clock, db), m.group(1), twilio)


async def leave_held_and_failed(db: str) -> tuple[int, int]:
    """Two texts as the worker leaves them: one held (it went to Twilio, and Twilio could not be
    asked whether it arrived) and one Twilio refused for good (21211). Returns their ids."""
    store = await open_store(str(db))
    try:
        async with store.transaction() as conn:
            ids = await outbox.enqueue(conn, [
                outbox.NewText("test:held", LUNA_MOBILE, HELD_BODY, "delay", A_0800),
                outbox.NewText("test:failed", MILO_MOBILE, FAILED_BODY, "delay", MILO_0800)], START)
            # Claimed (marked `sending`) in the same transaction: the running worker never sees them queued.
            assert len(await outbox.claim_due(conn, START)) == 2
            await outbox.mark_held(conn, ids[0], START, HELD_WHY)
            await outbox.mark_failed(conn, ids[1], START, "21211", "Invalid 'To' Phone Number")
    finally:
        await store.close()
    return ids[0], ids[1]


async def sent(desk: TextingDesk, row: int) -> bool:
    return (await desk.outbox_row(row))[0] == "sent"


async def panel(desk: Desk) -> str:
    """The "Texts that need you" panel as the console shows it now."""
    page = await (await desk.client.get("/console")).text()
    m = re.search(r'<section class="panel needs-you.*?</section>', page, re.S)
    assert m, "no 'Texts that need you' panel on the console"
    return m.group(0)


async def test_held_and_failed_texts_show_for_signed_in_staff_only(texting: TextingDesk) -> None:
    held, failed = await leave_held_and_failed(texting.api.db)
    shown = await panel(texting)
    assert "Texts that need you" in shown and '<span class="count hot">2</span>' in shown
    assert f'id="ob-{held}"' in shown and f'id="ob-{failed}"' in shown
    # Who, which visit, the number to phone, the text itself, and what happened in plain words.
    assert "Luna" in shown and "Maria Lopez" in shown and "(312) 555-0101" in shown and "Visit 8:00 AM" in shown
    assert "May or may not have reached the client — the text service could not confirm." in shown
    assert "Milo" in shown and "Emma Rossi" in shown and "The number is not a valid phone number." in shown
    assert "Code 21211: Invalid &#39;To&#39; Phone Number" in shown
    assert "Dr. Ruiz is running about 20 min late" in shown and "Milo&#39;s vet is running late" in shown
    assert "Send it again" in shown and "Don't send (I'll phone them)" in shown
    assert "Try again" in shown and "Dismiss" in shown
    # The board's top line points at them.
    page = await (await texting.client.get("/console")).text()
    assert '<a class="needs-you-link" href="#texts-need-you">2 texts need you</a>' in page
    # Pushed over the live stream too (the side region).
    live = await texting.client.get("/console/live")
    first = await read_sse(live, 2)
    live.close()
    assert f'id="ob-{held}"' in first["side"] and "2 texts need you" in first["board"]
    # Signed out: none of it.
    texting.client.session.cookie_jar.clear()
    resp = await texting.client.get("/console", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")
    assert "Dr. Ruiz is running" not in await resp.text()
    assert (await texting.client.get("/console/live")).status == 401
    refused = await texting.client.post(f"/console/outbox/{held}/resend", data={"csrf": texting.csrf}, headers=FETCH)
    assert refused.status == 401
    assert await texting.outbox_row(held) == ("held", "unknown_if_sent", HELD_WHY)


async def test_send_it_again_sends_a_held_text_exactly_once_and_at_once(texting: TextingDesk) -> None:
    held, failed = await leave_held_and_failed(texting.api.db)
    ans = await texting.post(f"/console/outbox/{held}/resend")
    assert ans["message"] == "Sending the text to Maria Lopez again." and ans["undo"] is None
    # The worker is woken, not left to its next poll.
    assert await texting.received(LUNA_MOBILE, HELD_BODY, within=1.0) < 1.0
    await eventually(lambda: sent(texting, held), "the resent text marked sent")
    assert await texting.outbox_row(held) == ("sent", None, None)
    shown = await panel(texting)
    assert f'id="ob-{held}"' not in shown and f'id="ob-{failed}"' in shown and '"count hot">1<' in shown
    # Who decided, in the log and in the console's recent actions (with no Undo: it has gone).
    [ev] = await texting.events("text_decision")
    assert ev["actor"] == "user:ana" and ev["appointment_id"] is None
    assert {k: json.loads(ev["data"])[k] for k in ("outbox", "decision", "visit", "status")} == {
        "outbox": held, "decision": "resend", "visit": A_0800, "status": "held"}
    page = await (await texting.client.get("/console")).text()
    assert re.search(r'<span class="what">Held text to Luna sent again</span>\s*<span class="actor">ana</span>\s*</li>',
                     page)
    # A second click (a stale page, a colleague) sends nothing more.
    again = await texting.post(f"/console/outbox/{held}/resend", status=409)
    assert "dealt with already" in again["error"]
    await asyncio.sleep(0.2)
    texting.wake_worker()
    await asyncio.sleep(0.2)
    assert texting.twilio.bodies_to(LUNA_MOBILE) == [HELD_BODY]
    # "Try again" on the failed one (the number was fixed at the desk, say): sent once too.
    ans = await texting.post(f"/console/outbox/{failed}/resend")
    assert ans["message"] == "Trying the text to Emma Rossi again."
    await texting.received(MILO_MOBILE, FAILED_BODY)
    await asyncio.sleep(0.2)
    assert texting.twilio.bodies_to(MILO_MOBILE) == [FAILED_BODY]
    assert "None: every text today went out" in await panel(texting)


async def test_dont_send_and_dismiss_take_texts_off_the_list_and_send_nothing(texting: TextingDesk) -> None:
    held, failed = await leave_held_and_failed(texting.api.db)
    drop = await texting.post(f"/console/outbox/{held}/drop")
    assert drop["message"] == "Not sending it. Please phone Maria Lopez on (312) 555-0101."
    assert drop["undo"] is None
    dismiss = await texting.post(f"/console/outbox/{failed}/dismiss")
    assert dismiss["message"] == "Dismissed the failed text to Emma Rossi."
    shown = await panel(texting)
    assert "None: every text today went out" in shown and '<span class="count">0</span>' in shown
    assert "texts need you" not in await (await texting.client.get("/console")).text()
    # The rows say what reception chose; the refusal's reason is kept.
    assert await texting.outbox_row(held) == ("failed", "dropped", "reception chose not to send")
    assert await texting.outbox_row(failed) == ("failed", "dismissed", "Invalid 'To' Phone Number")
    decisions = await texting.events("text_decision")
    assert [(json.loads(e["data"])["outbox"], json.loads(e["data"])["decision"], e["actor"]) for e in decisions] == [
        (held, "drop", "user:ana"), (failed, "dismiss", "user:ana")]
    page = await (await texting.client.get("/console")).text()
    assert "Held text to Luna not sent (phoning instead)" in page and "Failed text to Milo dismissed" in page
    # Nothing went out, even with the worker woken, and nothing comes back on its own.
    texting.wake_worker()
    await asyncio.sleep(0.3)
    assert texting.twilio.accepted == []
    texting.api.clock.advance(minutes=30)
    texting.wake_worker()
    await asyncio.sleep(0.2)
    assert texting.twilio.accepted == [] and "None: every text today went out" in await panel(texting)
    # Deciding twice is refused, and changes nothing.
    for path in (f"/console/outbox/{held}/resend", f"/console/outbox/{failed}/dismiss"):
        assert "dealt with already" in (await texting.post(path, status=409))["error"]
    assert await texting.outbox_row(held) == ("failed", "dropped", "reception chose not to send")


async def test_unknown_text_id_gets_a_clear_message_not_a_500(texting: TextingDesk) -> None:
    for what in ("resend", "drop", "dismiss"):
        err = await texting.post(f"/console/outbox/4242/{what}", status=404)
        assert err == {"error": "no text number 4242: reload the page for the current list", "field": "id"}
    huge = await texting.post(f"/console/outbox/{10**30}/resend", status=404)
    assert "no text number" in huge["error"]
    # The console's other numbered routes answer an id too large for SQLite the same way.
    for path in (f"/console/undo/{10**30}", f"/console/alerts/{10**30}/ack", f"/console/inbox/{10**30}/done"):
        assert "reload the page" in (await texting.post(path, status=404))["error"]
    # A plain form post (no script) comes back to the console with the message shown.
    resp = await texting.client.post("/console/outbox/4242/resend", data={"csrf": texting.csrf},
                                     allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console?error=")
    page = await (await texting.client.get(resp.headers["Location"])).text()
    assert '<p class="error">no text number 4242: reload the page for the current list</p>' in page
    # A text that went out fine is not reception's to resend.
    one_off = await texting.post(f"/console/visits/{A_0800}/text", {"body": "See you soon"})
    assert one_off["ok"]
    await texting.received(LUNA_MOBILE, "See you soon")
    [row_id] = await texting.sql("SELECT id FROM outbox WHERE body = 'See you soon'")
    await eventually(lambda: sent(texting, row_id[0]), "the one-off text marked sent")
    err = await texting.post(f"/console/outbox/{row_id[0]}/resend", status=409)
    assert err["error"] == "this text was dealt with already (it is sent now): nothing was changed"
    assert texting.twilio.bodies_to(LUNA_MOBILE) == ["See you soon"]
    # Not an action the console knows.
    assert (await texting.post("/console/outbox/1/delete", status=404)) is not None


async def test_a_text_twilio_may_have_got_is_held_and_reaches_the_console_live(texting: TextingDesk) -> None:
    """The whole way: a console text meets a 500 (Twilio may have created it) while Twilio's list
    API is down too, so the worker cannot tell; it retries the lookup, never the send, then holds
    it. The open console shows it without a reload; "Send it again" sends it, once."""
    texting.twilio.fail_next(1, "500")
    texting.twilio.fail_lookups = True
    live = await texting.client.get("/console/live")
    assert "Texts that need you" in (await read_sse(live, 2))["side"]
    await texting.post(f"/console/visits/{A_0800}/text", {"body": "Luna's lab results are in"})
    [(row_id,)] = await texting.sql("SELECT id FROM outbox WHERE body = ?", ("Luna's lab results are in",))
    for _ in range(40):  # each round: the retry is due, the worker looks it up, the lookup fails
        if (await texting.outbox_row(row_id))[0] == "held":
            break
        texting.api.clock.advance(minutes=10)
        texting.wake_worker()
        await asyncio.sleep(0.05)
    status, code, message = await texting.outbox_row(row_id)
    assert (status, code) == ("held", "unknown_if_sent") and "may or may not have been sent" in message
    assert texting.twilio.accepted == []  # the 500 created nothing, and nothing was resent blindly
    side = ""
    while f'id="ob-{row_id}"' not in side:
        side = (await read_sse(live, 7))["side"]
    live.close()
    assert "May or may not have reached the client" in side and "Luna&#39;s lab results are in" in side
    texting.twilio.fail_lookups = False
    await texting.post(f"/console/outbox/{row_id}/resend")
    await texting.received(LUNA_MOBILE, "Luna's lab results are in")
    await asyncio.sleep(0.2)
    # (By now, 80 min on, the event also decided a delay text for Luna: a different text.)
    assert texting.twilio.bodies_to(LUNA_MOBILE).count("Luna's lab results are in") == 1


async def test_a_text_refused_until_the_worker_gives_up_is_listed_with_the_reason(texting: TextingDesk) -> None:
    texting.twilio.fail_next(8, "429")
    await texting.post(f"/console/visits/{A_0800}/text", {"body": "Please bring Luna's records"})
    [(row_id,)] = await texting.sql("SELECT id FROM outbox WHERE body = ?", ("Please bring Luna's records",))
    for _ in range(40):
        if (await texting.outbox_row(row_id))[0] == "failed":
            break
        texting.api.clock.advance(minutes=10)
        texting.wake_worker()
        await asyncio.sleep(0.05)
    assert (await texting.outbox_row(row_id))[:2] == ("failed", "20429")
    shown = await panel(texting)
    assert "the text service kept turning it away, and the notifier gave up" in shown
    assert "gave up after 8 attempts" in shown and "Try again" in shown
    await texting.post(f"/console/outbox/{row_id}/dismiss")
    assert f'id="ob-{row_id}"' not in await panel(texting)
    assert "Please bring Luna's records" not in texting.twilio.bodies_to(LUNA_MOBILE)


async def test_no_try_again_for_a_number_that_has_opted_out(texting: TextingDesk) -> None:
    held, failed = await leave_held_and_failed(texting.api.db)
    store = await open_store(str(texting.api.db))
    try:
        async with store.transaction() as conn:
            await outbox.record_opt_out(conn, MILO_MOBILE, "sms", START)
    finally:
        await store.close()
    shown = await panel(texting)
    article = re.search(rf'<article[^>]*id="ob-{failed}".*?</article>', shown, re.S)
    assert article and "The client has since opted out of texts." in article.group(0)
    assert "Try again" not in article.group(0) and "Dismiss" in article.group(0)
    err = await texting.post(f"/console/outbox/{failed}/resend", status=409)
    assert "opted out" in err["error"]
    await asyncio.sleep(0.2)
    assert texting.twilio.accepted == []


# -- an imported day: blocked time and numbers that take no texts (issue 16) --------------


async def test_console_shows_blocked_time_and_numbers_that_take_no_texts(desk: Desk) -> None:
    api = desk.api
    doc = {"clients": [{"id": "k1", "name": "Flower Shop", "mobile": "1-800-FLOWERS", "sms_consent": True}],
           "pets": [{"id": "k1/Luna", "client": "k1", "name": "Luna"}],
           "appointments": [{"id": "x1", "vet": "v1", "pet": "k1/Luna", "scheduled": "2026-03-02T13:00:00-06:00",
                             "booked_min": 20}],
           "blocks": [{"id": "m1", "vet": "v1", "start": "2026-03-02T12:45:00-06:00",
                       "end": "2026-03-02T13:30:00-06:00", "reason": "Staff meeting"}]}
    resp = await api.client.post("/api/schedule", json=doc, headers=api.h("pms"))
    assert resp.status == 200, await resp.text()
    page = await (await api.client.get("/console")).text()
    assert '<p class="blocked">Blocked 12:45 PM–1:30 PM · Staff meeting</p>' in page
    await desk.post("/console/visits/x1/checkin")  # a waiting client's card is always shown
    page = await (await api.client.get("/console")).text()
    assert "☎ (800) 356-9377 · toll-free number, phone — no texts" in page
    visit = await desk.appt("x1")
    assert visit["estimate"]["start"] >= "2026-03-02T13:30:00-06:00"  # not during the meeting
    refused = await desk.post("/console/visits/x1/text", {"body": "Hello"}, status=409)
    assert "toll-free number and cannot take texts" in json.dumps(refused)


async def test_a_vets_title_from_the_console_is_what_spanish_pages_say(desk: Desk) -> None:
    """Luna's owner reads Spanish and Luna is with Dr. Ana Ruiz (v1): "con la Dra. Ana Ruiz",
    or "con el Dr. ..." once reception says so; the title is kept for every Spanish sentence."""
    from html import unescape

    from notifier.links import status_token
    from tests.conftest import DAY

    a_0800 = f"{DAY.isoformat()}-v1-0800"
    status = f"/s/{status_token(desk.api.secret, a_0800)}"
    assert "con la Dra. Ana Ruiz" in unescape(await (await desk.client.get(status)).text())  # the import's title
    ans = await desk.post("/console/vet-title", {"vet": "v1", "title": "Dr."})
    assert "el Dr. Ana Ruiz" in ans["message"] and ans["undo"] is None
    assert "con el Dr. Ana Ruiz" in unescape(await (await desk.client.get(status)).text())
    await desk.post("/console/vet-title", {"vet": "v1", "title": ""})
    assert "con Dr. Ana Ruiz" in unescape(await (await desk.client.get(status)).text())  # no title: as named
    bad = await desk.post("/console/vet-title", {"vet": "v1", "title": "Prof."}, status=400)
    assert bad["field"] == "title"
    # Each change is in the log, with who made it and what it replaced; Recent actions shows it.
    logged = [(json.loads(r["data"]), r["actor"]) for r in await desk.events("vet_title")]
    assert logged == [({"vet": "v1", "title": "Dr.", "previous": "Dra."}, "user:ana"),
                      ({"vet": "v1", "title": None, "previous": "Dr."}, "user:ana")]
    assert "Dr. Ana Ruiz&#39;s title in Spanish: none" in await (await desk.client.get("/console")).text()


async def test_declared_emergency_says_how_many_clients_are_texted(desk: Desk) -> None:
    desk.api.clock.advance(minutes=15)  # 08:05: texts are never sent before 08:00
    ans = await desk.post("/console/emergency", {"vet": "v1", "minutes": "120"})
    m = re.search(r"Emergency declared for Dr\. Ana Ruiz \(120 min\): (\d+) clients are being texted", ans["message"])
    assert m, ans["message"]
    rows = await desk.sql("SELECT COUNT(DISTINCT to_number) FROM outbox WHERE kind = 'delay'")
    assert int(m.group(1)) == rows[0][0] > 1


# -- the line the board shows is the estimator's dispatch order ---------------------------------


@asynccontextmanager
async def _one_vet_clinic(new_db: NewDb, clock: ManualClock) -> AsyncIterator[tuple[TestClient[Any, Any],
                                                                                      dict[str, str]]]:
    """A clinic of one vet and three bookings (a1 and a2 at 9:00, a3 at 10:00), nothing learned yet."""
    db = new_db("one")
    store = await open_store(str(db))
    try:
        async with store.transaction() as tx:
            await tx.set_clinic(Clinic("One Vet Clinic", "America/Chicago"))
            tokens = {role: await tx.create_token(role, role, START) for role in ("pms", "reception")}
            await create_user(tx, "ana", PASSWORD, START)
    finally:
        await store.close()
    async with TestClient(TestServer(create_app(Config(db_path=str(db), clock=clock, secret="s")))) as client:
        pms = {"Authorization": f"Bearer {tokens['pms']}"}
        resp = await client.post("/api/schedule", headers=pms, json={
            "vets": [{"id": "v1", "name": "Dr. Ana Ruiz"}],
            "appointment_types": [{"id": "exam", "name": "Exam", "booked_min": 20}],
            "appointments": [{"id": f"a{i}", "vet": "v1", "type": "exam", "pet": pet, "scheduled": at}
                             for i, (pet, at) in enumerate((("Luna", "2026-03-02T09:00:00"),
                                                            ("Rex", "2026-03-02T09:00:00"),
                                                            ("Coco", "2026-03-02T10:00:00")), start=1)]})
        assert resp.status == 200, await resp.text()
        yield client, {"Authorization": f"Bearer {tokens['reception']}"}


async def _line_and_estimates(client: TestClient[Any, Any]) -> tuple[list[str], list[str]]:
    """Dr. Ruiz's waiting line as the board orders it, and the same visits by estimated start."""
    rt = client.server.app[RUNTIME]
    board = await load_board(rt, client.server.app[CLOCK].now())
    lane = board.lane("v1")
    assert lane is not None
    line = [v.id for v in lane.waiting]
    est = await rt.estimates(board.now, exact=True)
    return line, sorted(line, key=lambda vid: (est[vid].start, line.index(vid)))


async def test_the_board_line_follows_the_estimator_when_two_share_a_booked_time(
        new_db: NewDb, clock: ManualClock) -> None:
    async with _one_vet_clinic(new_db, clock) as (client, reception):
        for vid, t in (("a2", "08:40"), ("a1", "08:50")):  # Rex, booked at the same time, came first
            resp = await client.post("/api/events", headers=reception,
                                     json={"type": "checkin", "appointment": vid, "at": f"2026-03-02T{t}:00"})
            assert resp.status == 201, await resp.text()
        clock.set(datetime(2026, 3, 2, 8, 58, tzinfo=START.tzinfo))
        line, by_estimate = await _line_and_estimates(client)
        # The old board put a1 first (by id); the estimator takes whoever came first.
        assert line == by_estimate == ["a2", "a1"]


async def test_moving_up_someone_booked_later_is_refused_until_the_vet_may_take_them(
        new_db: NewDb, clock: ManualClock) -> None:
    async with _one_vet_clinic(new_db, clock) as (client, reception):
        # Coco (booked at 10:00) is here at 8:30, long before her time; Luna (9:00) comes at 8:50.
        for vid, t in (("a3", "08:30"), ("a1", "08:50")):
            resp = await client.post("/api/events", headers=reception,
                                     json={"type": "checkin", "appointment": vid, "at": f"2026-03-02T{t}:00"})
            assert resp.status == 201, await resp.text()
        clock.set(datetime(2026, 3, 2, 8, 55, tzinfo=START.tzinfo))
        assert await _line_and_estimates(client) == (["a1", "a3"], ["a1", "a3"])
        # Reception tries to move Coco up. Nobody is started more than 5 minutes before their
        # booking, so the estimator would still have Dr. Ruiz see Luna first: the old board took
        # the move and showed Coco first while every estimate (and text) said Luna. Now the desk
        # is told why, and the line stays the estimator's.
        assert (await log_in(client)).status == 303
        page = await client.get("/console")
        m = re.search(r'<meta name="csrf-token" content="([^"]+)"', await page.text())
        assert m
        resp = await client.post("/console/visits/a3/up", data={"csrf": m.group(1)}, headers=FETCH)
        assert resp.status == 409
        assert "Coco is booked for 10:00 AM" in (await resp.json())["error"]
        assert await _line_and_estimates(client) == (["a1", "a3"], ["a1", "a3"])
        clock.set(datetime(2026, 3, 2, 9, 56, tzinfo=START.tzinfo))  # now Coco may start: the move is taken
        resp = await client.post("/console/visits/a3/up", data={"csrf": m.group(1)}, headers=FETCH)
        assert resp.status == 200, await resp.text()
        assert await _line_and_estimates(client) == (["a3", "a1"], ["a3", "a1"])
