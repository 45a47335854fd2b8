"""A picture of every kiosk screen in both languages (pytest-textual-snapshot).

Screens are opened directly with fixed data (`kiosk.fake`), so the pictures never change
with the clock and the run stays quick; the taps between screens are tested against the
real server in test_kiosk.py.
Update after a deliberate change: pytest tests/test_kiosk_snapshots.py --snapshot-update
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from kiosk.app import SIZE, KioskApp, make_kiosk
from kiosk.fake import BOOK, NOW, FakeClinic
from kiosk.screens.consent import ConsentScreen
from kiosk.screens.done import DoneScreen
from kiosk.screens.error import ErrorScreen
from kiosk.screens.notfound import NotFoundScreen
from kiosk.screens.pets import PetsScreen
from kiosk.screens.phone import PhoneScreen
from kiosk.screens.urgent import UrgentConfirm
from kiosk.screens.urgent_done import UrgentDoneScreen
from kiosk.screens.walkin import WalkinScreen
from kiosk.screens.welcome import WelcomeScreen
from kiosk.speech import Speaker
from kiosk.widgets.keypad import Keypad

PHONE = "+14155550132"


def done(app: KioskApp) -> DoneScreen:
    visit = FakeClinic()._visit(BOOK["+14155550177"][0])
    return DoneScreen([visit], now=NOW, consent=True)


def offline(app: KioskApp) -> DoneScreen:
    return DoneScreen([], offline=True)


def consent(app: KioskApp) -> ConsentScreen:
    app.session.phone, app.session.sms_consent = PHONE, True
    return ConsentScreen()


def walkin(step: Any) -> Callable[[KioskApp], WalkinScreen]:
    def make(app: KioskApp) -> WalkinScreen:
        app.session.walkin = {"name": "Ana R", "pet": "Rex", "species": "dog"}
        return WalkinScreen(step)

    return make


SCREENS: dict[str, Callable[[KioskApp], Any]] = {
    "welcome": lambda app: WelcomeScreen(),
    "phone_typo": lambda app: PhoneScreen(),
    "pets": lambda app: PetsScreen(BOOK[PHONE]),
    "consent": consent,
    "done": done,
    "done_offline": offline,
    "notfound": lambda app: NotFoundScreen(),
    "urgent_confirm": lambda app: WelcomeScreen(),
    "urgent_done": lambda app: UrgentDoneScreen(),
    "walkin_name": walkin("name"),
    "walkin_species": walkin("species"),
    "walkin_reason": walkin("reason"),
    "error_busy": lambda app: ErrorScreen(busy=True),
    # Issue 20: the time-out warning, and the client's modes (large text, high contrast, reading aloud).
    "more_time": lambda app: PhoneScreen(),
    "welcome_large": lambda app: WelcomeScreen(),
    "phone_large": lambda app: PhoneScreen(),
    "done_large": done,
    "walkin_name_large": walkin("name"),
    "more_time_large": lambda app: PhoneScreen(),
    "welcome_contrast": lambda app: WelcomeScreen(),
    "pets_contrast": lambda app: PetsScreen(BOOK[PHONE]),
    "done_contrast": done,
    "consent_read_aloud": consent,
    # Issue 15: the compact layout of a small terminal (80x24).
    "welcome_small": lambda app: WelcomeScreen(),
    "phone_small": lambda app: PhoneScreen(),
    "walkin_name_small": walkin("name"),
    "done_small": done,
}
SMALL = (80, 24)


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("screen", list(SCREENS))
def test_kiosk_screen_snapshot(screen: str, lang: str, snap_compare: Any, tmp_path: Path) -> None:
    # Reading aloud is shown (the lit button), not heard: espeak-ng writes into tmp_path.
    app = make_kiosk("http://fake", "token", tmp_path / "queue.db", api=FakeClinic(),
                     speaker=Speaker(wav_dir=tmp_path))

    async def run_before(pilot: Pilot[None]) -> None:
        # The top bar names the clinic once the (fake) server has told it: wait for that, bounded.
        deadline = time.monotonic() + 15
        while not app.clinic_name:
            assert time.monotonic() < deadline, "the kiosk never learned the clinic's name"
            await pilot.pause(0.02)
        app.session.lang = lang
        app.session.large = screen.endswith("_large")
        app.session.contrast = screen.endswith("_contrast")
        app.session.read_aloud = screen.endswith("_read_aloud")
        if screen == "done_offline":
            # A check-in really taken offline: queued in the kiosk's own SQLite queue, so the
            # staff mark shows it however the background delivery attempts interleave.
            app.api = FakeClinic(offline=True)
            await app.send("checkin", {"phone": PHONE, "appointments": [], "idempotency_key": "snapshot-0001"})
        app.go(SCREENS[screen](app))
        await pilot.pause()
        if screen == "phone_typo":
            keypad = app.screen.query_one(Keypad)
            for key in "41555":
                keypad.type_key(key)
            keypad.type_key("ok")
        elif screen in ("pets", "pets_contrast"):
            await pilot.click("#pet-1")
            # Move the pointer off the button: a hovered button's colour depends on timing.
            await pilot.hover(offset=(0, 0))
        elif screen == "urgent_confirm":
            app.push_screen(UrgentConfirm())
        elif screen.startswith("more_time"):
            app.clock = lambda: 1000.0  # the countdown shows a fixed number of seconds
            app.last_input = 1000.0 - app.idle_s - 1
            app.idle_tick()

        await pilot.pause()
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(app, terminal_size=SMALL if screen.endswith("_small") else SIZE, run_before=run_before)
