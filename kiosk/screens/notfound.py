"""No booking for this number today. Says nothing more: the desk (already told) helps."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.widgets import Button, Static

from kiosk.screens.base import KioskScreen


class NotFoundScreen(KioskScreen):
    def compose_body(self) -> ComposeResult:
        yield Static(self.t("notfound_title"), id="title", classes="title")
        yield Static(self.t("notfound_body"), id="message", classes="message")
        yield Button(self.t("try_again"), id="try-again", classes="action", variant="primary")
        yield Button(self.t("walkin"), id="walkin", classes="action")

    @on(Button.Pressed, "#try-again")
    def again(self) -> None:
        from kiosk.screens.phone import PhoneScreen

        self.kiosk.go(PhoneScreen())

    @on(Button.Pressed, "#walkin")
    def walkin(self) -> None:
        from kiosk.screens.walkin import WalkinScreen

        self.kiosk.go(WalkinScreen("name"))
