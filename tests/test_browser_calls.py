"""The lobby display calls names out loud (issue 20), in a real headless Chromium against the
real app: reception starts two consults back to back; the display shows each name large and
plays its chime and words, one after the other, never both at once."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import LiveServer
from tests.test_browser import ARGS, CHROMIUM, TIMEOUT_MS, api_event
from tests.test_lobby_calls import BELLA, LUNA, set_settings

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"),
                       reason="needs Debian's chromium (make test installs it)"),
]


@pytest.fixture
async def tv() -> AsyncIterator[Any]:
    """Chromium as a lobby TV runs it: allowed to play sound without a tap."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        args = [*ARGS, "--autoplay-policy=no-user-gesture-required"]
        b = await p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield b
        finally:
            await b.close()


async def test_display_calls_two_names_one_after_the_other(live_server: LiveServer, tv: Any) -> None:
    await live_server.stop()
    set_settings(live_server.db, vet_rooms={"v1": "2"})
    await live_server.start()
    page = await tv.new_page(viewport={"width": 1600, "height": 900})
    await page.goto(f"{live_server.base_url}/display?token={live_server.tokens['display']}")
    await page.locator("#live-state.ok").wait_for(timeout=TIMEOUT_MS)
    for aid in (LUNA, BELLA):
        await api_event(live_server, {"type": "checkin", "appointment": aid})
    await api_event(live_server, {"type": "start", "appointment": LUNA})
    await api_event(live_server, {"type": "start", "appointment": BELLA})

    # The first name is shown large at once, the sound under way.
    banner = page.locator("#call-now")
    await banner.wait_for(state="visible", timeout=TIMEOUT_MS)
    first = await banner.inner_text()
    assert first in ("Luna L., pase a la sala 2, por favor.", "Bella C., please come to Dr. Martin's room.")
    # Both are played to their end (each sound is a few seconds long), one at a time.
    deadline = time.monotonic() + 60
    while True:  # (wait_for_function would need eval, which the page's CSP forbids)
        log = await page.evaluate("window.waitroomCalls")
        if len(log) == 2 and log[1]["end"] is not None:
            break
        assert time.monotonic() < deadline, log
        await page.wait_for_timeout(100)
    assert {c["text"] for c in log} == {"Luna L., pase a la sala 2, por favor.",
                                        "Bella C., please come to Dr. Martin's room."}
    assert log[0]["text"] == first
    assert log[0]["end"] - log[0]["start"] > 1500  # the chime and the words were heard, not skipped
    assert log[1]["start"] >= log[0]["end"]  # never two at once
    # The sound the page played is the server's, behind the display token.
    url = await page.locator("#display [data-call]").first.get_attribute("data-audio")
    assert url and "token=" in url
    async with aiohttp.ClientSession() as s:
        ok = await s.get(live_server.base_url + url)
        assert ok.status == 200 and ok.content_type == "audio/wav"
        assert (await s.get(live_server.base_url + url.split("?")[0])).status == 401
    # The lobby sees pet names and initials only.
    text = await page.locator("main").inner_text()
    assert "Lopez" not in text and "Carter" not in text

    # A display opened afterwards shows the recent calls but does not call them again.
    late = await tv.new_page()
    await late.goto(f"{live_server.base_url}/display?token={live_server.tokens['display']}")
    await late.locator("#live-state.ok").wait_for(timeout=TIMEOUT_MS)
    assert await late.locator("#display [data-call]").count() == 2
    await late.wait_for_timeout(500)
    assert await late.evaluate("window.waitroomCalls.length") == 0
