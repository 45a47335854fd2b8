"""After the urgent alert: a team member is coming (or, offline: go to the desk now)."""

from __future__ import annotations

from textual.app import ComposeResult

from kiosk.screens.base import KioskScreen, Say


class UrgentDoneScreen(KioskScreen):
    def __init__(self, offline: bool = False) -> None:
        super().__init__()
        self.offline = offline

    def compose_body(self) -> ComposeResult:
        if self.offline:
            yield Say(self.t("urgent_offline_body"), id="title", classes="title urgent")
        else:
            yield Say(self.t("urgent_done_title"), id="title", classes="title urgent")
            yield Say(self.t("urgent_done_body"), id="message", classes="message")
