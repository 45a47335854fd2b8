"""The kiosk in a small terminal (issue 15 item 6), its top bar (item 10) and the demo's line (item 4).

80x24 is the smallest terminal anyone will start it in (piped through `tee`, a laptop's
default window): every screen must show every button, question and message whole, with the
check-in's QR code reachable by scrolling and "Finish" in view under it.
"""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from rich.cells import cell_len
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Button, Digits, Static

from kiosk.app import KioskApp, make_kiosk
from kiosk.demo import DemoNote
from kiosk.fake import FakeClinic
from kiosk.screens.done import DoneScreen
from kiosk.screens.pets import PetsScreen
from kiosk.screens.phone import PhoneScreen
from kiosk.screens.urgent import UrgentConfirm
from kiosk.screens.urgent_done import UrgentDoneScreen
from kiosk.screens.walkin import WalkinScreen
from kiosk.screens.welcome import WelcomeScreen
from kiosk.widgets.bigtext import label_text
from kiosk.widgets.keypad import Keypad
from kiosk.widgets.qrcode import QRCode
from server.demo import numbers_to_try
from tests.conftest import DAY, TZ, LiveServer, NewDb
from tests.test_kiosk import HOUSEHOLD, events, kiosk, tap, text, type_phone, until, wait_for
from tests.test_kiosk_snapshots import SCREENS, SMALL

DEMO = DemoNote(("312-555-0102", "312-555-0105"), "demo-data/README.txt")
# Each screen as a client finds it (not the large-text or high-contrast variants: large text
# is drawn four times taller and scrolls at this size; high contrast only changes colours).
PLAIN = [s for s in SCREENS if not s.endswith(("_large", "_contrast", "_read_aloud", "_small"))]


def essential(screen: Widget) -> list[Widget]:
    """What a client must see to use the screen: every button and key, the question, the
    hints and messages, the typed number or name, the top bar's words."""
    out: list[Widget] = []
    for w in screen.query("*"):
        if isinstance(w, (Button, Digits)) or w.id in ("brand", "status", "demo"):
            out.append(w)
        elif isinstance(w, Static) and any(w.has_class(c) for c in ("title", "hint", "message", "number", "typed")):
            out.append(w)
    return out


def shown_whole(app: KioskApp, w: Widget) -> bool:
    """`w` is on screen, every corner of it, not under anything nor scrolled away."""
    r = w.region
    if not r.area or not app.screen.region.contains_region(r):
        return False
    for x, y in ((r.x, r.y), (r.right - 1, r.y), (r.x, r.bottom - 1), (r.right - 1, r.bottom - 1)):
        try:
            there, _ = app.get_widget_at(x, y)
        except Exception:  # nothing drawn there
            return False
        if there is not w and w not in there.ancestors:
            return False
    return True


def problems(app: KioskApp) -> list[str]:
    found = []
    for w in essential(app.screen):
        if isinstance(app.screen, DoneScreen) and w.id == "finish":
            continue  # under the QR code: scrolled to below
        if not shown_whole(app, w):
            found.append(f"{w!r} at {w.region} is cut off or hidden")
        elif isinstance(w, Button) and cell_len(label_text(w).strip()) > w.content_region.width:
            found.append(f"{w!r}: label {label_text(w)!r} wider than the button ({w.content_region.width})")
    return found


async def show(pilot: Pilot[None], app: KioskApp, name: str) -> None:
    """Open screen `name` as the snapshot tests do, and wait until it is laid out."""
    app.session = app.fresh_session()
    app.go(SCREENS[name](app))
    if name == "urgent_confirm":
        app.push_screen(UrgentConfirm())
    elif name == "more_time":
        app.clock = lambda: 1000.0
        app.last_input = 1000.0 - app.idle_s - 1
        app.idle_tick()
    if name == "phone_typo":
        await until(pilot, lambda: bool(app.screen.query(Keypad)))
        keypad = app.screen.query_one(Keypad)
        for key in "3125550":
            keypad.type_key(key)
    await until(pilot, lambda: app.screen.is_current and all(w.region.area for w in essential(app.screen)))
    await pilot.wait_for_scheduled_animations()


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_every_screen_shows_every_button_and_message_whole_at_80x24(lang: str, tmp_path: Path) -> None:
    app = make_kiosk("http://fake", "token", tmp_path / "queue.db", api=FakeClinic(), lang=lang, demo=DEMO,
                     idle_s=3600, done_idle_s=3600)
    async with app.run_test(size=SMALL) as pilot:
        await until(pilot, lambda: app.clinic_name != "")
        for name in PLAIN:
            await show(pilot, app, name)
            assert app.screen.has_class("-short") and app.screen.has_class("-narrow"), name
            assert problems(app) == [], name
            assert len(app.screen.query("#demo")) == (0 if app.screen.is_modal else 1), name
            if isinstance(app.screen, DoneScreen) and app.screen.query(QRCode):
                # The QR code is taller than what is left under the message: it scrolls into
                # view whole, and "Finish" under it ("Start over" stays in the top bar).
                for below in (app.screen.query_one(QRCode), app.screen.query_one("#finish")):
                    below.scroll_visible(animate=False)
                    await until(pilot, lambda w=below: shown_whole(app, w))  # type: ignore[misc]
                assert shown_whole(app, app.screen.query_one("#start-over"))


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_a_terminal_smaller_than_80x24_is_told_the_size_the_kiosk_needs(lang: str, tmp_path: Path) -> None:
    app = make_kiosk("http://fake", "token", tmp_path / "queue.db", api=FakeClinic(), lang=lang)
    async with app.run_test(size=(60, 20)) as pilot:
        await until(pilot, lambda: app.screen.has_class("-tiny"))
        notice = app.screen.query_one("#too-small", Static)
        await until(pilot, lambda: shown_whole(app, notice))
        assert "80 × 24" in str(notice.render())
        await pilot.resize_terminal(*SMALL)
        await until(pilot, lambda: not app.screen.has_class("-tiny"))
        assert not notice.display and problems(app) == []


async def test_a_whole_check_in_walk_in_and_urgent_call_by_taps_at_80x24(
        live_server: LiveServer, tmp_path: Path) -> None:
    app = kiosk(live_server, tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await tap(pilot, "#appointment")
        await type_phone(pilot, HOUSEHOLD)
        await wait_for(pilot, PetsScreen)
        await tap(pilot, "#pet-1")
        await tap(pilot, "#continue")
        await tap(pilot, "#check-in")
        await wait_for(pilot, DoneScreen)
        assert "Max is checked in with Dr. Ana Ruiz" in text(pilot)
        await tap(pilot, "#start-over")  # "Finish" is under the QR code: scrolled to below
        await wait_for(pilot, WelcomeScreen)
        await tap(pilot, "#walkin")
        await wait_for(pilot, WalkinScreen)
        for typed, then in (("AL", "step-pet"), ("REX", "step-species")):
            for letter in typed:
                await tap(pilot, f"#key-{letter}")
            await until(pilot, lambda t=typed: text(pilot, "#typed") == t.capitalize())  # type: ignore[misc]
            await tap(pilot, "#key-ok")
            await until(pilot, lambda c=then: app.screen.has_class(c))  # type: ignore[misc]
        await tap(pilot, "#species-dog")
        await tap(pilot, "#reason-injury")
        await wait_for(pilot, DoneScreen)
        assert text(pilot).startswith("Thank you. Rex")
        app.screen.query_one("#finish").scroll_visible(animate=False)  # as the mouse wheel would
        await tap(pilot, "#finish")
        await wait_for(pilot, WelcomeScreen)
        await tap(pilot, "#urgent")
        await wait_for(pilot, UrgentConfirm)
        await tap(pilot, "#urgent-yes")
        await wait_for(pilot, UrgentDoneScreen)
    assert [a for a, _ in events(live_server, "checkin")] == ["2026-03-02-v1-0820"]
    assert len(events(live_server, "walkin")) == 1 and len(events(live_server, "urgent")) == 1


async def test_top_bar_names_the_clinic_and_the_welcome_screen_has_nothing_to_start_over(
        live_server: LiveServer, tmp_path: Path) -> None:
    app = kiosk(live_server, tmp_path)
    async with app.run_test() as pilot:
        await until(pilot, lambda: text(pilot, "#brand") == "Riverside Animal Clinic")
        assert not app.screen.query("#start-over")  # a fresh welcome: nothing to start over
        await tap(pilot, "#appointment")
        await wait_for(pilot, PhoneScreen)
        assert text(pilot, "#brand") == "Riverside Animal Clinic"
        await tap(pilot, "#start-over")
        await wait_for(pilot, WelcomeScreen)
        assert not app.screen.query("#start-over")


async def test_a_kiosk_names_the_clinic_once_the_server_tells_it_and_again_after_an_offline_restart(
        live_server: LiveServer, tmp_path: Path) -> None:
    await live_server.stop()
    app = kiosk(live_server, tmp_path)
    async with app.run_test() as pilot:
        await until(pilot, lambda: bool(app.screen.query("#brand")))
        assert text(pilot, "#brand") == "Welcome to the clinic"
        await live_server.start()
        await until(pilot, lambda: text(pilot, "#brand") == "Riverside Animal Clinic")
    # Restarted while the server is down again: the name it heard last time, at once.
    await live_server.stop()
    again = kiosk(live_server, tmp_path)
    async with again.run_test() as pilot:
        await until(pilot, lambda: bool(again.screen.query("#brand")))
        await until(pilot, lambda: text(pilot, "#brand") == "Riverside Animal Clinic", seconds=5)


async def test_only_the_demo_shows_what_to_try_in_the_clients_language(tmp_path: Path) -> None:
    plain = make_kiosk("http://fake", "token", tmp_path / "q1.db", api=FakeClinic())
    async with plain.run_test() as pilot:
        await until(pilot, lambda: bool(plain.screen.query("#brand")))
        assert not plain.screen.query("#demo")
    demo = make_kiosk("http://fake", "token", tmp_path / "q2.db", api=FakeClinic(), demo=DEMO)
    async with demo.run_test() as pilot:
        await until(pilot, lambda: bool(demo.screen.query("#demo")))
        assert text(pilot, "#demo") == "DEMO · try 312-555-0102 / 312-555-0105 · more in demo-data/README.txt"
        await tap(pilot, "#lang-es")
        await until(pilot, lambda: text(pilot, "#demo").startswith("DEMO · pruebe 312-555-0102"))


async def test_the_demo_suggests_numbers_with_a_booking_still_to_come(new_db: NewDb) -> None:
    """The numbers on the demo's line find a pet to check in: asked of the real server, on a
    demo day seeded as `waitroom demo` seeds it, at the demo's 10:00."""
    from server.config import ManualClock
    from server.demo import seed_day
    from server.store import open_store

    ten = datetime.combine(DAY, time(10, 0), TZ)
    db = new_db("demo")
    store = await open_store(str(db))
    try:
        async with store.transaction() as tx:
            tokens = await seed_day(tx, DAY, "America/Chicago", history_days=2, once_a_day=True)
    finally:
        await store.close()
    server = LiveServer(db, tokens, ManualClock(ten))
    await server.start()
    numbers = numbers_to_try(DAY, TZ, ten)
    assert len(numbers) == 2 and numbers[0] == "312-555-0102"
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {tokens['kiosk']}"}) as http:
            for number in numbers:
                async with http.post(f"{server.base_url}/api/kiosk/lookup", json={"phone": number}) as resp:
                    found: dict[str, Any] = await resp.json()
                later = [a for a in found["appointments"]
                         if datetime.fromisoformat(a["scheduled"]) >= ten and not a["checked_in"]]
                assert later, (number, found)
    finally:
        await server.stop()


async def test_pages_and_the_kiosk_box_have_a_favicon(live_server: LiveServer, tmp_path: Path) -> None:
    """Browsers ask every site for /favicon.ico: the clinic's pages and the tablets' kiosk
    page answer with the icon, not a 404."""
    from aiohttp.test_utils import TestClient, TestServer

    from kiosk.web import KioskCommand, KioskWebServer

    box = KioskWebServer(KioskCommand(live_server.base_url, live_server.tokens["kiosk"], str(tmp_path / "q.db")))
    async with TestClient(TestServer(box.app())) as kiosk_page, aiohttp.ClientSession() as http:
        for resp in (await http.get(f"{live_server.base_url}/favicon.ico"), await kiosk_page.get("/favicon.ico")):
            assert resp.status == 200 and resp.content_type == "image/x-icon"
            assert (await resp.read())[:4] == b"\x00\x00\x01\x00"  # an ICO file's header
