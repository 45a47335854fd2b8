"""First screen: language, then appointment / walk-in / urgent help."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

from kiosk.offline import new_key
from kiosk.screens.base import KioskScreen


class WelcomeScreen(KioskScreen):
    def compose_body(self) -> ComposeResult:
        with Horizontal(id="langs"):
            yield Button(self.t("lang_en"), id="lang-en", classes="lang" + (" -chosen" if self.lang == "en" else ""))
            yield Button(self.t("lang_es"), id="lang-es", classes="lang" + (" -chosen" if self.lang == "es" else ""))
        yield Static(self.t("welcome_title"), id="title", classes="title")
        yield Static(self.t("welcome_hint"), classes="hint")
        yield Button(self.t("have_appointment"), id="appointment", classes="action", variant="primary")
        yield Button(self.t("walkin"), id="walkin", classes="action")
        yield Button(self.t("urgent"), id="urgent", classes="action", variant="error")

    @on(Button.Pressed, ".lang")
    def choose_language(self, event: Button.Pressed) -> None:
        lang = (event.button.id or "lang-en").removeprefix("lang-")
        if lang != self.lang:
            self.kiosk.session.lang = lang
            self.kiosk.go(WelcomeScreen())

    @on(Button.Pressed, "#appointment")
    def appointment(self) -> None:
        from kiosk.screens.phone import PhoneScreen

        self.kiosk.go(PhoneScreen())

    @on(Button.Pressed, "#walkin")
    def walkin(self) -> None:
        from kiosk.screens.walkin import WalkinScreen

        self.kiosk.go(WalkinScreen("name"))

    @on(Button.Pressed, "#urgent")
    def urgent(self) -> None:
        from kiosk.screens.urgent import UrgentConfirm

        def answered(yes: bool | None) -> None:
            if yes:
                self.send_urgent()

        self.app.push_screen(UrgentConfirm(), answered)

    @work(exclusive=True, exit_on_error=False)
    async def send_urgent(self) -> None:
        from kiosk.screens.urgent_done import UrgentDoneScreen

        sent = await self.kiosk.send("urgent", {"idempotency_key": new_key(), "note": "kiosk button"})
        self.kiosk.go(UrgentDoneScreen(offline=sent.answer is None))
