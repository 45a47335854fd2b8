"""One confirm before the urgent alert: a second tap, so a child's poke doesn't raise it."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Button

from kiosk.screens.base import BigButton, KioskModal, Say


class UrgentConfirm(KioskModal):
    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Say(self.t("urgent_confirm_title"), classes="title")
            yield Say(self.t("urgent_confirm_body"), classes="hint")
            yield BigButton(self.t("urgent_yes"), id="urgent-yes", classes="action", variant="error")
            yield BigButton(self.t("cancel"), id="urgent-cancel", classes="action")
            yield self.read_aloud_button()
            yield Button(self.t("start_over"), id="start-over", classes="start-over")

    @on(Button.Pressed, "#urgent-yes")
    def yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#urgent-cancel")
    def cancel(self) -> None:
        self.dismiss(False)
