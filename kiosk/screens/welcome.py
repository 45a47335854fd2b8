"""First screen: language, then appointment / walk-in / urgent help."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button

from kiosk.messages import Ask, Go, Submit
from kiosk.offline import new_key
from kiosk.screens.base import BigButton, KioskScreen, Say

MODES = {"large": "large_text", "contrast": "high_contrast"}  # session field -> label


class WelcomeScreen(KioskScreen):
    START_OVER = False  # nothing typed yet: nothing to start over

    def compose_body(self) -> ComposeResult:
        session = self.kiosk.session
        with Horizontal(id="langs"):
            yield Button(self.t("lang_en"), id="lang-en", classes="lang" + (" -chosen" if self.lang == "en" else ""))
            yield Button(self.t("lang_es"), id="lang-es", classes="lang" + (" -chosen" if self.lang == "es" else ""))
            for field, label in MODES.items():
                on_ = bool(getattr(session, field))
                yield Button(self.t("mode_on" if on_ else "mode_off", mode=self.t(label)), id=f"mode-{field}",
                             classes="mode" + (" -selected" if on_ else ""))
        yield Say(self.t("welcome_title"), id="title", classes="title")
        yield Say(self.t("welcome_hint"), classes="hint")
        yield BigButton(self.t("have_appointment"), id="appointment", classes="action", variant="primary")
        yield BigButton(self.t("walkin"), id="walkin", classes="action")
        yield BigButton(self.t("urgent"), id="urgent", classes="action", variant="error")

    @on(Button.Pressed, ".lang")
    def choose_language(self, event: Button.Pressed) -> None:
        lang = (event.button.id or "lang-en").removeprefix("lang-")
        if lang != self.lang:
            self.kiosk.session.lang = lang
            self.ask(Go(WelcomeScreen()))

    @on(Button.Pressed, ".mode")
    def toggle_mode(self, event: Button.Pressed) -> None:
        """Large text or high contrast, for this client: drawn again at once, reset with the session."""
        field = (event.button.id or "").removeprefix("mode-")
        if field in MODES:
            setattr(self.kiosk.session, field, not getattr(self.kiosk.session, field))
            self.ask(Go(WelcomeScreen()))

    @on(Button.Pressed, "#appointment")
    def appointment(self) -> None:
        from kiosk.screens.phone import PhoneScreen

        self.ask(Go(PhoneScreen()))

    @on(Button.Pressed, "#walkin")
    def walkin(self) -> None:
        from kiosk.screens.walkin import WalkinScreen

        self.ask(Go(WalkinScreen("name")))

    @on(Button.Pressed, "#urgent")
    def urgent(self) -> None:
        from kiosk.screens.urgent import UrgentConfirm

        def answered(yes: bool | None) -> None:
            if yes:
                self.ask(Submit(self, "urgent", {"idempotency_key": new_key(), "note": "kiosk button"}))

        self.ask(Ask(UrgentConfirm(), answered))

    def on_submit_sent(self, message: Submit.Sent) -> None:
        from kiosk.screens.urgent_done import UrgentDoneScreen

        self.ask(Go(UrgentDoneScreen(offline=message.sent.answer is None)))
