"""Something failed that the client can't fix: send them, kindly, to the front desk."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.widgets import Button

from kiosk.messages import StartOver
from kiosk.screens.base import BigButton, KioskScreen, Say


class ErrorScreen(KioskScreen):
    def __init__(self, busy: bool = False) -> None:
        super().__init__()
        self.busy = busy

    def compose_body(self) -> ComposeResult:
        yield Say(self.t("busy_title" if self.busy else "error_title"), id="title", classes="title")
        yield Say(self.t("busy_body" if self.busy else "error_body"), id="message", classes="message")
        yield BigButton(self.t("finish"), id="finish", classes="action", variant="primary")

    @on(Button.Pressed, "#finish")
    def finish(self) -> None:
        self.ask(StartOver())
