"""Before the idle reset: "Need more time?", a large button and the seconds left.

WCAG 2.2.1 and Section 508 ask for a warning before a time-out and at least 20 seconds to
answer it. Any tap on this dialog (or a key) keeps the client's screen as it was; when the
count reaches zero the kiosk starts over and forgets what was typed, as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from textual import events, on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Button

from kiosk.screens.base import BigButton, KioskModal, Say


class MoreTime(KioskModal):
    """`seconds_left()`: until the kiosk starts over; `touched()`: the client is still there.
    Both come from the app that opens the warning (a message would arrive after the app's
    next idle check, which would open the warning again)."""

    _answered = False

    def __init__(self, seconds_left: Callable[[], float], touched: Callable[[], None]) -> None:
        super().__init__()
        self._seconds_left = seconds_left
        self._touched = touched

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Say(self.t("more_time_title"), id="title", classes="title")
            yield Say(self.countdown_text(), id="countdown", classes="message")
            yield BigButton(self.t("more_time_yes"), id="more-time", classes="action", variant="primary")
            yield Say(self.t("more_time_hint"), classes="hint")
            yield self.read_aloud_button()

    def seconds_left(self) -> int:
        return max(0, math.ceil(self._seconds_left()))

    def countdown_text(self) -> str:
        return self.t("more_time_body", n=self.seconds_left())

    def on_mount(self) -> None:
        self.set_interval(0.25, self.tick)

    def tick(self) -> None:
        if self.is_current:
            self.query_one("#countdown", Say).update(self.countdown_text())

    def keep_going(self) -> None:
        self._touched()
        if self.is_current and not self._answered:
            self._answered = True
            self.dismiss(True)

    @on(Button.Pressed, "#more-time")
    def more_time(self, event: Button.Pressed) -> None:
        event.stop()
        self.keep_going()

    def on_click(self, event: events.Click) -> None:
        # Anywhere on the dialog or around it: the tap is taken here, never passed to the
        # screen underneath (it might land on "Start over"). "Read aloud" still works.
        if isinstance(event.widget, Button) and event.widget.id == "read-aloud":
            return
        event.stop()
        self.keep_going()

    def on_key(self, event: events.Key) -> None:
        event.stop()
        self.keep_going()
