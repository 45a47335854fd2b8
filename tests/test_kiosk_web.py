"""The kiosk on a tablet (issue 18): `waitroom kiosk --web` in Debian's Chromium with touch.

The real clinic server on loopback, the real kiosk web server (kiosk/web.py: one kiosk
process per browser session through textual-serve) and a real headless Chromium emulating a
touchscreen (`has_touch`, every tap a touchscreen tap at the spot where the label is drawn).
The screen is read back from the page's own terminal (xterm.js's buffer), the QR code from a
screenshot with zxing-cpp.
"""

from __future__ import annotations

import asyncio
import io
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bench.bench_outage import Network
from kiosk.web import KioskCommand, KioskWebServer
from tests import dbq
from tests.conftest import LiveServer
from tests.test_browser import ARGS, CHROMIUM, SHOTS
from tests.test_browser import pytestmark as browser_marks

# One set of Chromium flags and one screenshot folder for every browser test (test_browser.py).
pytestmark = [*browser_marks]

HOUSEHOLD = "3125550102"  # Bella 08:00 Dr. Chloe Martin, Max 08:20 Dr. Ana Ruiz
WAIT_S = 30.0  # a kiosk process starting and answering on a loaded 2-core machine
TOP_BAR = "Riverside Animal Clinic"  # the kiosk's top bar names the test clinic (issue 15 item 10)


@dataclass
class Box:
    """The lobby box: the kiosk web server, in front of the clinic server."""

    server: KioskWebServer
    clinic: LiveServer
    queue: Path
    port: int
    network: Network | None = None  # between the tablets and the box, when a test cuts it

    @property
    def url(self) -> str:
        return self.network.url if self.network is not None else f"http://127.0.0.1:{self.port}"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def box(live_server: LiveServer, tmp_path: Path) -> AsyncIterator[Box]:
    queue = tmp_path / "kiosk-queue.db"
    kiosk = KioskCommand(live_server.base_url, live_server.tokens["kiosk"], str(queue))
    server = KioskWebServer(kiosk, grace_s=60)
    runner = web.AppRunner(server.app())
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Box(server, live_server, queue, port)
    finally:
        await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def tablet(browser: Any, width: int = 1280, height: int = 800) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": height}, has_touch=True,
                                        is_mobile=True, device_scale_factor=1)
    return await context.new_page()


# Reading and tapping the kiosk's screen ------------------------------------------------------

SCREEN_JS = """() => {
  const t = (window.textualTerminals || [])[0];
  if (!t) return null;
  const b = t.terminal.buffer.active, lines = [];
  for (let y = 0; y < t.terminal.rows; y++) {
    // Up to the terminal's width: after the terminal narrows, xterm.js keeps each line's old
    // cells past the new width until an idle moment trims them (never drawn, but a read of the
    // whole line returns them: on a busy machine, the landscape layout's right half, keys and
    // all, where a tap lands on nothing).
    const line = b.getLine(b.viewportY + y);
    lines.push(line ? line.translateToString(true, 0, t.terminal.cols) : "");
  }
  const r = t.terminal.element.querySelector(".xterm-screen").getBoundingClientRect();
  return {lines, cols: t.terminal.cols, rows: t.terminal.rows, x: r.left, y: r.top,
          w: r.width / t.terminal.cols, h: r.height / t.terminal.rows};
}"""


async def screen(page: Any) -> dict[str, Any]:
    got = await page.evaluate(SCREEN_JS)
    assert got is not None, "no terminal on the page"
    return dict(got)


def text_of(s: dict[str, Any]) -> str:
    return "\n".join(s["lines"])


async def wait_text(page: Any, pattern: str, seconds: float = WAIT_S) -> dict[str, Any]:
    """Until the screen shows `pattern` (a regex), bounded by time."""
    deadline = time.monotonic() + seconds
    while True:
        s = await screen(page)
        if re.search(pattern, text_of(s)):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not on screen within {seconds} s; it shows:\n{text_of(s)}")
        await asyncio.sleep(0.05)


def find(s: dict[str, Any], label: str, nth: int = 0) -> tuple[float, float]:
    """The page coordinates of the middle of `label` as drawn on screen (its nth occurrence)."""
    hits = [(y, m.start()) for y, line in enumerate(s["lines"]) for m in re.finditer(re.escape(label), line)]
    assert len(hits) > nth >= -len(hits), f"{label!r} not on screen:\n{text_of(s)}"
    y, x = hits[nth]
    return s["x"] + (x + len(label) / 2) * s["w"], s["y"] + (y + 0.5) * s["h"]


async def tap(page: Any, label: str, nth: int = 0, seconds: float = WAIT_S) -> None:
    """A finger on `label`, once it is drawn."""
    s = await wait_text(page, re.escape(label), seconds)
    x, y = find(s, label, nth)
    await page.touchscreen.tap(x, y)


async def open_kiosk(page: Any, box: Box) -> None:
    await page.goto(box.url + "/")
    await wait_text(page, "I have an appointment")


async def key(page: Any, label: str, space: int = 8) -> None:
    """A keypad key: its label alone in the middle of its button (not a digit of the number
    shown, nor a letter of a word): the last such on screen, where the keypad is."""
    pattern = rf"(?<=\s{{{space}}}){re.escape(label)}(?=\s{{{space}}}|$)"
    s = await wait_text(page, pattern)
    y, x = [(y, m.start()) for y, line in enumerate(s["lines"]) for m in re.finditer(pattern, line)][-1]
    await page.touchscreen.tap(s["x"] + (x + len(label) / 2) * s["w"], s["y"] + (y + 0.5) * s["h"])


async def changed(page: Any, before: str, seconds: float = WAIT_S) -> None:
    """Until the screen differs from `before` (a tap has been taken and drawn)."""
    deadline = time.monotonic() + seconds
    while text_of(await screen(page)) == before:
        assert time.monotonic() < deadline, f"the screen did not change within {seconds} s"
        await asyncio.sleep(0.05)


async def settled(page: Any, quiet: float = 0.3, seconds: float = WAIT_S) -> None:
    """Until the screen has stopped changing for `quiet` seconds. After the tablet turns, the
    kiosk redraws at the new size in several frames; a key found on a frame that is about to be
    replaced is tapped where it no longer is (seen: a digit lost, 'no booking for this number')."""
    deadline = time.monotonic() + seconds
    last = text_of(await screen(page))
    while True:
        await asyncio.sleep(quiet)
        now = text_of(await screen(page))
        if now == last:
            return
        assert time.monotonic() < deadline, f"the screen kept changing for {seconds} s"
        last = now


async def type_number_only(page: Any, digits: str) -> None:
    """Tap each digit, each time waiting for the number shown (big digits) to take it. A tap
    that registered twice, or not at all, makes another number: the lookup then fails."""
    for d in digits:
        before = text_of(await screen(page))
        await key(page, d)
        await changed(page, before)


async def type_number(page: Any, digits: str) -> None:
    await type_number_only(page, digits)
    await key(page, "OK")


def events(server: LiveServer, kind: str) -> list[tuple[Any, ...]]:
    return dbq.rows_now(server.db, "SELECT appointment_id, actor FROM events WHERE type = ? ORDER BY seq", kind)


class Wire:
    """Everything the box sent the tablet: pages, scripts and every websocket frame both ways."""

    def __init__(self, page: Any) -> None:
        self.seen: list[bytes] = []
        page.on("websocket", self._ws)
        page.on("response", self._response)
        self._pending: list[Any] = []

    def _ws(self, ws: Any) -> None:
        ws.on("framereceived", lambda payload: self.seen.append(_b(payload)))
        ws.on("framesent", lambda payload: self.seen.append(_b(payload)))

    def _response(self, response: Any) -> None:
        self._pending.append(response)

    async def everything(self) -> bytes:
        for r in self._pending:
            try:
                self.seen.append(await r.body())
            except Exception:  # a websocket upgrade has no body
                pass
        self._pending.clear()
        return b"\n".join(self.seen)


def _b(payload: str | bytes) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


def in_a_tablet_frame(png: bytes, out: Path) -> None:
    """The screenshot inside a drawn tablet: a dark rounded bezel with a camera dot."""
    from PIL import Image, ImageDraw

    shot = Image.open(io.BytesIO(png)).convert("RGB")
    bezel, radius = 56, 48
    frame = Image.new("RGB", (shot.width + 2 * bezel, shot.height + 2 * bezel), "white")
    draw = ImageDraw.Draw(frame)
    draw.rounded_rectangle((0, 0, frame.width - 1, frame.height - 1), radius=radius, fill="#1c1c1e",
                           outline="#8e8e93", width=3)
    draw.ellipse((bezel // 2 - 6, frame.height // 2 - 6, bezel // 2 + 6, frame.height // 2 + 6), fill="#3a3a3c")
    frame.paste(shot, (bezel, bezel))
    frame.save(out, optimize=True)


async def decode_qr(page: Any) -> list[str]:
    """Every QR code in a screenshot of the page, as a phone's camera would read it."""
    import zxingcpp  # dev extra: zxing-cpp
    from PIL import Image

    shot = await page.screenshot()
    img = Image.open(io.BytesIO(shot))
    return [r.text for r in zxingcpp.read_barcodes(img)]


async def check_in(page: Any, phone: str = HOUSEHOLD, pet: str = "Bella", vet: str = "Dr. Chloe Martin") -> None:
    """From the welcome screen to the done screen: `phone`, then its first visit (`pet`)."""
    await tap(page, "I have an appointment")
    await wait_text(page, "Your mobile number")
    await type_number(page, phone)
    await tap(page, pet)
    await wait_text(page, f"☑  {pet}")
    await tap(page, "Continue", nth=-1)  # the button, not the hint above the list
    await wait_text(page, "Text updates")
    await tap(page, "Check in")
    await wait_text(page, rf"Thank you\. {pet} is checked in with {re.escape(vet)}")


async def status_page_from_qr(page: Any, box: Box) -> str:
    """Read the done screen's QR code off a screenshot and open the page it points to."""
    urls: list[str] = []
    deadline = time.monotonic() + WAIT_S
    while not urls:
        urls = await decode_qr(page)
        assert urls or time.monotonic() < deadline, "no QR code readable on the done screen"
    assert len(urls) == 1 and urls[0].startswith(box.clinic.base_url + "/s/"), urls
    status = await (await page.context.new_page()).goto(urls[0])
    assert status is not None and status.ok
    return str(await status.text())


async def test_check_in_on_a_tablet_with_the_qr_code_to_the_status_page_and_no_token_in_the_browser(
        box: Box, browser: Any) -> None:
    page = await tablet(browser)
    wire = Wire(page)
    await open_kiosk(page, box)
    await check_in(page)
    assert [a for a, _ in events(box.clinic, "checkin")] == ["2026-03-02-v3-0800"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    in_a_tablet_frame(await page.screenshot(), SHOTS / "kiosk-tablet.png")  # the README's picture
    # The QR code on the screen, read off a screenshot, opens this visit's status page.
    body = await status_page_from_qr(page, box)
    assert "Bella" in body and "Dr. Chloe Martin" in body
    # The kiosk token never reaches the tablet: not in the page, its scripts, or any frame.
    token = box.clinic.tokens["kiosk"].encode()
    seen = await wire.everything()
    assert b"Thank" in seen or len(seen) > 10_000  # the wire was really recorded
    assert token not in seen
    # Nor on the box's process list (the kiosk process has it in its environment only).
    for session in box.server.sessions.values():
        process = session.service._process
        assert process is not None
        cmdline = await asyncio.to_thread(Path(f"/proc/{process.pid}/cmdline").read_bytes)
        assert token not in cmdline


async def letters(page: Any, word: str) -> None:
    """Type `word` on the kiosk's letter keypad, each tap drawn before the next."""
    for ch in word:
        before = text_of(await screen(page))
        await key(page, ch, space=2)
        await changed(page, before)
    await key(page, "OK", space=2)


async def test_walk_in_on_a_tablet_with_the_qr_code_to_the_status_page(box: Box, browser: Any) -> None:
    page = await tablet(browser)
    await open_kiosk(page, box)
    await tap(page, "Walk-in (no appointment)")
    await wait_text(page, "Your name")
    await letters(page, "JO")
    await wait_text(page, "Your pet's name")
    await letters(page, "REX")
    await tap(page, "Dog")
    await tap(page, "Sick")
    await wait_text(page, r"Thank you\. Rex has joined the walk-in list")
    body = await status_page_from_qr(page, box)
    assert "Rex" in body
    assert len(events(box.clinic, "walkin")) == 1


async def test_urgent_help_on_a_tablet(box: Box, browser: Any) -> None:
    page = await tablet(browser)
    await open_kiosk(page, box)
    await tap(page, "My pet needs urgent help")
    await tap(page, "Yes, get help now")
    await wait_text(page, "A team member is coming")
    assert len(events(box.clinic, "urgent")) == 1


async def test_a_network_drop_shows_reconnecting_and_loses_nothing(box: Box, browser: Any) -> None:
    box.network = Network(box.port)
    await box.network.set("up")
    try:
        page = await tablet(browser)
        await open_kiosk(page, box)
        await tap(page, "I have an appointment")
        await wait_text(page, "Your mobile number")
        await type_number_only(page, HOUSEHOLD[:5])
        typed = text_of(await screen(page))
        # The tablet's Wi-Fi drops: its connection breaks and new ones go nowhere.
        await box.network.set("blackhole")
        await page.wait_for_function("document.body.classList.contains('-reconnecting')", timeout=WAIT_S * 1000)
        assert await page.locator("#reconnecting").is_visible()
        assert "Reconnecting" in await page.locator("#reconnecting").inner_text()
        await page.screenshot(path=str(SHOTS / "kiosk-tablet-reconnecting.png"))
        await box.network.set("up")
        await page.wait_for_function("!document.body.classList.contains('-reconnecting')", timeout=WAIT_S * 1000)
        # The same session, where it was: the five digits typed before the drop are still there.
        assert len(box.server.sessions) == 1
        assert text_of(await screen(page)) == typed
        await type_number_only(page, HOUSEHOLD[5:])
        await key(page, "OK")
        await tap(page, "Bella")
        await wait_text(page, "☑  Bella")
        await tap(page, "Continue", nth=-1)
        await tap(page, "Check in")
        await wait_text(page, r"Thank you\. Bella is checked in")
        assert [a for a, _ in events(box.clinic, "checkin")] == ["2026-03-02-v3-0800"]
    finally:
        await box.network.close()


async def test_two_tablets_each_with_their_own_session_share_the_box_queue(box: Box, browser: Any) -> None:
    a, b = await tablet(browser), await tablet(browser, 1024, 768)
    await asyncio.gather(open_kiosk(a, box), open_kiosk(b, box))
    assert len(box.server.sessions) == 2
    await asyncio.gather(check_in(a, HOUSEHOLD, "Bella", "Dr. Chloe Martin"),
                         check_in(b, "3125550101", "Luna", "Dr. Ana Ruiz"))
    # Each tablet shows only its own client's visit.
    assert "Luna" not in text_of(await screen(a)) and "Bella" not in text_of(await screen(b))
    assert sorted(a for a, _ in events(box.clinic, "checkin")) == ["2026-03-02-v1-0800", "2026-03-02-v3-0800"]
    with sqlite3.connect(box.queue) as conn:
        assert conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall() == [("delivered", 2)]


@pytest.mark.parametrize("size", [(1280, 800), (1024, 768), (800, 1280)], ids=["1280x800", "1024x768", "800x1280"])
async def test_made_for_a_tablet(box: Box, browser: Any, size: tuple[int, int]) -> None:
    page = await tablet(browser, *size)
    await open_kiosk(page, box)
    await wait_text(page, "My pet needs urgent help")
    # The screen arrives in several writes on a busy machine: read it once the top bar is drawn too.
    s = await wait_text(page, TOP_BAR)
    # The whole welcome screen fits: every button drawn, nothing scrolls, the terminal inside the screen.
    assert s["cols"] >= 100 and s["rows"] >= 50, (s["cols"], s["rows"])
    top_bar = [i for i, line in enumerate(s["lines"]) if TOP_BAR in line]
    assert top_bar and top_bar[0] < 5, text_of(s)  # drawn from the top, not scrolled
    fits = await page.evaluate("""() => {
        const r = document.querySelector('.xterm-screen').getBoundingClientRect();
        const d = document.scrollingElement;
        return r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight
            && d.scrollHeight <= innerHeight && d.scrollWidth <= innerWidth;
    }""")
    assert fits
    x, y = find(s, "My pet needs urgent help")
    assert y < size[1] - s["h"]  # the last button's label is on screen, with room below
    # No zoom, no selection or menu on a long press, one tap one click.
    assert "user-scalable=no" in (await page.get_attribute("meta[name=viewport]", "content") or "")
    style = await page.evaluate("() => { const c = getComputedStyle(document.body);"
                                " return [c.userSelect, c.touchAction, c.webkitTouchCallout]; }")
    assert style[0] == "none" and style[1] == "manipulation"
    menu = await page.evaluate("() => !document.dispatchEvent(new MouseEvent('contextmenu', {cancelable: true}))")
    assert menu, "a long press would open the browser's menu"
    # No soft keyboard: the terminal's one text input asks for none and cannot be typed into by touch.
    textarea = page.locator(".xterm-helper-textarea")
    assert await textarea.get_attribute("inputmode") == "none"
    assert await textarea.get_attribute("readonly") is not None
    # Full screen on the first tap, where the browser allows it.
    await page.touchscreen.tap(x, y - 10 * s["h"])  # on the hint text: changes nothing
    await page.wait_for_function("document.fullscreenElement !== null", timeout=WAIT_S * 1000)
    await page.screenshot(path=str(SHOTS / f"kiosk-tablet-welcome-{size[0]}x{size[1]}.png"))


async def test_turning_the_tablet_refits_the_same_session(box: Box, browser: Any) -> None:
    page = await tablet(browser, 1280, 800)
    await open_kiosk(page, box)
    await tap(page, "I have an appointment")
    await type_number_only(page, "312")
    await page.set_viewport_size({"width": 800, "height": 1280})
    deadline = time.monotonic() + WAIT_S
    while True:
        s = await screen(page)
        top = [i for i, line in enumerate(s["lines"]) if TOP_BAR in line]
        if s["cols"] == 100 and top and top[0] < 5 and "Your mobile number" in text_of(s):
            break
        assert time.monotonic() < deadline, f"not refitted: {s['cols']}x{s['rows']}\n{text_of(s)}"
        await asyncio.sleep(0.05)
    await settled(page)
    assert len(box.server.sessions) == 1
    await type_number_only(page, HOUSEHOLD[3:])
    await key(page, "OK")
    await wait_text(page, "Who is here today")
