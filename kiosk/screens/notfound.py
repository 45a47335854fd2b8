"""No booking for this number today. Says nothing more: the desk (already told) helps."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.widgets import Button

from kiosk.messages import Go
from kiosk.screens.base import BigButton, KioskScreen, Say


class NotFoundScreen(KioskScreen):
    def compose_body(self) -> ComposeResult:
        yield Say(self.t("notfound_title"), id="title", classes="title")
        yield Say(self.t("notfound_body"), id="message", classes="message")
        yield BigButton(self.t("try_again"), id="try-again", classes="action", variant="primary")
        yield BigButton(self.t("walkin"), id="walkin", classes="action")

    @on(Button.Pressed, "#try-again")
    def again(self) -> None:
        from kiosk.screens.phone import PhoneScreen

        self.ask(Go(PhoneScreen()))

    @on(Button.Pressed, "#walkin")
    def walkin(self) -> None:
        from kiosk.screens.walkin import WalkinScreen

        self.ask(Go(WalkinScreen("name")))
