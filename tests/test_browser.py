"""End to end in a real headless Chromium (Debian's /usr/bin/chromium) against the real app on
loopback: log in, declare an emergency and watch the board and the lobby display move without
a reload, undo it, mark a no-show, follow a status page live, lock out a bad login, refuse a
form without its CSRF token, send a held text again from "Texts that need you" (through a fake
Twilio). Also takes the README's screenshots (docs/screenshots/).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notifier.links import status_token
from server.config import Config, ManualClock
from tests.conftest import START, TZ, LiveServer, eventually, seed_clinic
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.test_web_console import HELD_BODY, LUNA_MOBILE, PASSWORD, add_user, leave_held_and_failed

pytestmark = [
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists() and not shutil.which("chromium"),
                       reason="needs Debian's chromium (make test installs it)"),
]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
# The README's screenshots are taken only when asked (WAITROOM_SCREENSHOTS=1): a test run must not
# leave the checkout modified, and every run's pixels differ a little.
SHOTS = (Path(__file__).resolve().parent.parent / "docs" / "screenshots" if os.environ.get("WAITROOM_SCREENSHOTS")
         else Path(tempfile.gettempdir()) / "waitroom-screenshots")
A_0800 = "2026-03-02-v1-0800"  # Luna (Maria Lopez), Dr. Ruiz at 8:00
TIMEOUT_MS = 5000


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def api_event(server: LiveServer, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as s:
        resp = await s.post(f"{server.base_url}/api/events", json=body,
                            headers={"Authorization": f"Bearer {server.tokens['reception']}"})
        assert resp.status == 201, await resp.text()


async def log_in(page: Any, server: LiveServer, password: str = PASSWORD) -> None:
    await page.goto(f"{server.base_url}/login")
    await page.get_by_label("Name").fill("ana")
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def play_morning(server: LiveServer, until: datetime) -> None:
    """A morning's visits through the real API: done, in consult, waiting."""
    async with aiohttp.ClientSession() as s:
        headers = {"Authorization": f"Bearer {server.tokens['reception']}"}
        schedule = {}
        for vet in ("v1", "v2", "v3"):
            est = await s.get(f"{server.base_url}/api/estimates", headers=headers)
            schedule[vet] = [e["appointment"] for e in (await est.json())["estimates"] if e["vet"] == vet]
        server.clock.set(until)
        speed = {"v1": 1.25, "v2": 1.5, "v3": 0.9}

        async def post(body: dict[str, Any]) -> None:
            resp = await s.post(f"{server.base_url}/api/events", json=body, headers=headers)
            assert resp.status == 201, await resp.text()

        for vet, ids in schedule.items():
            free = until.replace(hour=8, minute=0)
            busy = False  # a consult still running: everyone after it is waiting
            for aid in ids:
                info = await (await s.get(f"{server.base_url}/api/appointments/{aid}", headers=headers)).json()
                sched = datetime.fromisoformat(info["scheduled"])
                arrive = sched - timedelta(minutes=3)
                if arrive >= until:
                    break
                await post({"type": "checkin", "appointment": aid, "at": arrive.isoformat()})
                start = max(free, sched - timedelta(minutes=1))
                if busy or start >= until:
                    continue
                await post({"type": "start", "appointment": aid, "at": start.isoformat()})
                end = start + timedelta(minutes=info["booked_min"] * speed[vet])
                if end >= until:
                    busy = True
                    continue
                await post({"type": "end", "appointment": aid, "at": end.isoformat()})
                free = end + timedelta(minutes=1)


async def test_emergency_moves_board_and_display_live_and_undo(live_server: LiveServer, browser: Any) -> None:
    await add_user(live_server.db)
    morning = datetime(2026, 3, 2, 9, 40, tzinfo=TZ)
    await play_morning(live_server, morning)
    console = await browser.new_page(viewport={"width": 1440, "height": 1100})
    await log_in(console, live_server)
    await console.wait_for_url("**/console")
    await console.locator("#live-state.ok").wait_for(timeout=TIMEOUT_MS)
    display = await browser.new_page(viewport={"width": 1600, "height": 900})
    await display.goto(f"{live_server.base_url}/display?token={live_server.tokens['display']}")
    await display.locator("#live-state.ok").wait_for(timeout=TIMEOUT_MS)
    for page in (console, display):
        await page.evaluate("window.__sameDocument = true")
    lane = console.locator("#lane-v3")
    assert await lane.locator(".tag.em").count() == 0
    ruiz_line = display.locator("#d-v3")
    assert "(emergency)" not in await ruiz_line.inner_text()

    await console.get_by_label("Vet", exact=True).first.select_option("v3")
    await console.get_by_label("Expected length (minutes)").fill("60")
    await console.get_by_label("Patient (optional)").fill("Rex, hit by car")
    await console.get_by_role("button", name="Declare emergency").click()

    await lane.locator(".tag.em").first.wait_for(timeout=TIMEOUT_MS)
    await display.locator("#d-v3", has_text="(emergency)").wait_for(timeout=TIMEOUT_MS)
    assert await console.evaluate("window.__sameDocument") is True
    assert await display.evaluate("window.__sameDocument") is True
    flash = await console.locator("#flash").inner_text()
    assert "Emergency declared" in flash and re.search(r"(\d+ clients? (is|are) being texted|no client needed)", flash)
    # Cleared once declared: the form is not ready to declare the same emergency twice.
    assert await console.get_by_label("Patient (optional)").input_value() == ""

    SHOTS.mkdir(parents=True, exist_ok=True)
    await console.screenshot(path=str(SHOTS / "console.png"), full_page=True)
    await display.screenshot(path=str(SHOTS / "display.png"))
    # A waiting client's phone, at the same moment.
    waiting = await console.locator("#lane-v1 .card.waiting").first.get_attribute("id")
    assert waiting
    phone = await browser.new_page(viewport={"width": 390, "height": 760}, is_mobile=True)
    await phone.goto(f"{live_server.base_url}/s/{status_token(live_server.secret, waiting[2:])}")
    await phone.locator("#live-state.ok").wait_for(timeout=TIMEOUT_MS)
    await phone.screenshot(path=str(SHOTS / "status.png"))

    # Undo from the message that confirmed it: both screens go back.
    await console.locator("#flash").get_by_role("button", name="Undo").click()
    await console.locator("#flash", has_text="Undone").wait_for(timeout=TIMEOUT_MS)
    await lane.locator(".tag.em").first.wait_for(state="detached", timeout=TIMEOUT_MS)
    await display.locator("#d-v3", has_text="(emergency)").wait_for(state="detached", timeout=TIMEOUT_MS)
    assert await console.evaluate("window.__sameDocument") is True


async def test_mark_a_no_show(live_server: LiveServer, browser: Any) -> None:
    await add_user(live_server.db)
    page = await browser.new_page()
    await log_in(page, live_server)
    await page.locator("#live-state.ok").wait_for(timeout=TIMEOUT_MS)
    card = page.locator(f"#v-{A_0800}")
    await card.get_by_role("button", name="No-show: Luna").click()
    await card.wait_for(state="detached", timeout=TIMEOUT_MS)
    assert "no-show" in (await page.locator("#done-v1").inner_text()).lower()
    assert "Luna marked a no-show" in await page.locator("#flash").inner_text()


async def test_status_page_updates_live(live_server: LiveServer, browser: Any) -> None:
    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    # Luna's owner reads Spanish; `?lang=en` is the page's own switch to English (kept by the stream and the form).
    await page.goto(f"{live_server.base_url}/s/{status_token(live_server.secret, A_0800)}?lang=en")
    await page.locator("#live-state.ok").wait_for(timeout=TIMEOUT_MS)
    assert "Booked for 8:00 AM" in await page.locator("#status").inner_text()
    await page.evaluate("window.__sameDocument = true")
    await api_event(live_server, {"type": "checkin", "appointment": A_0800})
    await page.locator("#status", has_text="next").wait_for(timeout=TIMEOUT_MS)
    await page.get_by_role("button", name="I'm waiting in my car").click()
    await page.locator(".car-ok").wait_for(timeout=TIMEOUT_MS)
    await api_event(live_server, {"type": "start", "appointment": A_0800})
    await page.locator("#status", has_text="It's your turn").wait_for(timeout=TIMEOUT_MS)
    assert await page.evaluate("window.__sameDocument") is True


async def test_a_spanish_clients_status_page_is_live_in_spanish(live_server: LiveServer, browser: Any) -> None:
    # Luna's owner reads Spanish: the page, and the script's live/reconnecting words, are Spanish.
    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    await page.goto(f"{live_server.base_url}/s/{status_token(live_server.secret, A_0800)}")
    await page.locator("#live-state.ok", has_text="En vivo").wait_for(timeout=TIMEOUT_MS)
    assert await page.get_attribute("html", "lang") == "es"
    await api_event(live_server, {"type": "checkin", "appointment": A_0800})
    await page.locator("#status", has_text="Luna").wait_for(timeout=TIMEOUT_MS)
    assert "Booked for" not in await page.locator("#status").inner_text()


async def test_bad_login_locks_out(live_server: LiveServer, browser: Any) -> None:
    await add_user(live_server.db)
    page = await browser.new_page()
    for _ in range(4):
        await log_in(page, live_server, password="not the password")
        await page.locator("#login-error", has_text="Wrong name or password").wait_for(timeout=TIMEOUT_MS)
    await log_in(page, live_server, password="not the password")
    await page.locator("#login-error", has_text="locked").wait_for(timeout=TIMEOUT_MS)
    await log_in(page, live_server)  # the right password, but the account is locked
    await page.locator("#login-error", has_text="locked").wait_for(timeout=TIMEOUT_MS)
    assert "/console" not in page.url


async def test_form_without_csrf_token_is_refused(live_server: LiveServer, browser: Any) -> None:
    await add_user(live_server.db)
    page = await browser.new_page()
    await log_in(page, live_server)
    await page.wait_for_url("**/console")
    # As a forged cross-site form would arrive: a plain POST without the token.
    async with page.expect_navigation():
        await page.evaluate("""() => {
            const f = document.querySelector('form[action="/console/emergency"]');
            f.removeAttribute('data-ajax');
            f.querySelector('[name=csrf]').remove();
            f.submit();
        }""")
    assert "Refused" in await page.content()
    # Nothing was declared.
    await page.goto(f"{live_server.base_url}/console")
    assert await page.locator(".tag.em").count() == 0
    # The page's own script, without the token, is refused too.
    await page.evaluate("""() => {
        const f = document.querySelector('form[action="/console/emergency"]');
        f.querySelector('[name=csrf]').remove();
    }""")
    await page.get_by_role("button", name="Declare emergency").click()
    await page.locator("#flash .error", has_text="Refused").wait_for(timeout=TIMEOUT_MS)


@dataclass
class TextingServer(LiveServer):
    """The live server, texting through a fake Twilio."""

    twilio_url: str = ""

    def config(self) -> Config:
        return replace(super().config(), sms_provider="twilio", twilio_account_sid=ACCOUNT_SID,
                       twilio_auth_token=AUTH_TOKEN, twilio_from="+13125550100", twilio_base_url=self.twilio_url)


async def test_send_a_held_text_again_from_the_console(clinic_db: str, tmp_path: Path, browser: Any) -> None:
    db = clinic_db
    tokens = await seed_clinic(db)
    await add_user(db)
    held, failed = await leave_held_and_failed(db)
    async with FakeTwilio() as twilio:
        server = TextingServer(db, tokens, ManualClock(START), twilio_url=twilio.base_url)
        await server.start()
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 1100})
            await log_in(page, server)
            await page.locator("#live-state.ok").wait_for(timeout=TIMEOUT_MS)
            await page.evaluate("window.__sameDocument = true")
            panel = page.locator("#texts-need-you")
            row = panel.locator(f"#ob-{held}")
            assert "May or may not have reached the client" in await row.inner_text()
            assert "(312) 555-0101" in await row.inner_text()
            assert await panel.locator(".count.hot").inner_text() == "2"
            # The board's top line links to the panel.
            await page.get_by_role("link", name="2 texts need you").click()
            await panel.scroll_into_view_if_needed()
            # To look at (not the README's): keep them with `pytest --basetemp=DIR`.
            await page.screenshot(path=str(tmp_path / "console-texts-need-you.png"), full_page=True)
            await row.screenshot(path=str(tmp_path / "held-text.png"))

            await row.get_by_role("button", name="Send it again").click()
            await row.wait_for(state="detached", timeout=TIMEOUT_MS)
            assert "Sending the text to Maria Lopez again." in await page.locator("#flash").inner_text()
            assert await panel.locator(".count").inner_text() == "1"
            assert await panel.locator(f"#ob-{failed}").count() == 1
            await eventually(lambda: HELD_BODY in twilio.bodies_to(LUNA_MOBILE), "the held text resent")
            await asyncio.sleep(0.2)
            assert twilio.bodies_to(LUNA_MOBILE) == [HELD_BODY]
            assert await page.evaluate("window.__sameDocument") is True
        finally:
            await server.stop()
