"""Text updates yes/no (default: what the clinic has stored), then the check-in itself."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.widgets import Button

from kiosk.messages import Go, Submit
from kiosk.screens.base import BigButton, KioskScreen, Say
from kiosk.screens.phone import pretty_number


class ConsentScreen(KioskScreen):
    def consent_label(self) -> str:
        return self.t("consent_yes" if self.kiosk.session.sms_consent else "consent_no")

    def compose_body(self) -> ComposeResult:
        session = self.kiosk.session
        yield Say(self.t("consent_title"), id="title", classes="title")
        yield Say(pretty_number(session.phone), id="number", classes="number")
        yield BigButton(self.consent_label(), id="consent", classes="action toggle" + (
            " -selected" if session.sms_consent else ""))
        yield Say(self.t("consent_hint"), classes="hint")
        yield BigButton(self.t("check_in"), id="check-in", classes="action", variant="success")

    @on(Button.Pressed, "#consent")
    def toggle(self, event: Button.Pressed) -> None:
        session = self.kiosk.session
        session.sms_consent = not session.sms_consent
        event.button.label = self.consent_label()
        event.button.set_class(session.sms_consent, "-selected")

    @on(Button.Pressed, "#check-in")
    def check_in(self, event: Button.Pressed) -> None:
        event.button.disabled = True  # one tap, one check-in
        s = self.kiosk.session
        self.ask(Submit(self, "checkin", {"phone": s.phone, "appointments": s.selected, "sms_consent": s.sms_consent}))

    def on_submit_sent(self, message: Submit.Sent) -> None:
        from kiosk.screens.done import DoneScreen

        self.ask(Go(DoneScreen.after(message.sent, consent=self.kiosk.session.sms_consent)))
