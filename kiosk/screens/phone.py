"""The mobile number, typed on the big keypad and checked with phonenumbers."""

from __future__ import annotations

import phonenumbers
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Center
from textual.widgets import Digits

from kiosk.messages import Go, LookUp, Submit
from kiosk.screens.base import KioskScreen, Say
from kiosk.widgets.keypad import Keypad, echo

_NANP = {"US", "CA", "PR"}


def display_number(digits: str, region: str) -> str:
    """As-you-type formatting, in characters the big Digits widget can draw.

    North American numbers group 3-3-4 from the first digit ("123-45", "312-555-0100"), with
    a leading 1 split off only once the number is too long without it ("1-312-555-0100"):
    phonenumbers' formatter takes a first 1 for the trunk prefix and shows "1-234-5"."""
    if region.upper() in _NANP:
        head, rest = ("1-", digits[1:]) if digits.startswith("1") and len(digits) > 10 else ("", digits)
        groups = [rest[:3], rest[3:6], rest[6:]]
        return head + "-".join(g for g in groups if g)
    fmt = phonenumbers.AsYouTypeFormatter(region)
    out = ""
    for d in digits:
        out = fmt.input_digit(d)
    return out.replace("(", "").replace(")", "").replace(" ", "-").replace("--", "-").strip("-")


def to_e164(digits: str, region: str) -> str | None:
    """The number in E.164 if it is a valid number for the clinic's region, else None."""
    try:
        number = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def pretty_number(e164: str) -> str:
    """A stored E.164 number the way people write it at home."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return e164


class PhoneScreen(KioskScreen):
    _looking = False  # a lookup is on its way: a second OK does not send another

    def compose_body(self) -> ComposeResult:
        yield Say(self.t("phone_title"), id="title", classes="title")
        yield Digits("", id="number")
        yield Say(self.t("phone_hint"), id="message", classes="hint")
        with Center(id="keypad-row"):
            yield Keypad("digits", self.lang, max_length=15, id="keypad")

    @on(Keypad.Changed)
    def changed(self, event: Keypad.Changed) -> None:
        self.say(echo(self.lang, event.previous, event.value))
        self.query_one("#number", Digits).update(display_number(event.value, self.kiosk.region))
        message = self.query_one("#message", Say)
        message.remove_class("error")
        message.update(self.t("phone_hint"))

    @on(Keypad.Submitted)
    def submitted(self, event: Keypad.Submitted) -> None:
        message = self.query_one("#message", Say)
        number = to_e164(event.value, self.kiosk.region)
        if number is None:
            message.add_class("error")
            message.update(self.t("phone_typo" if event.value else "phone_empty"))
            self.say(message.words)
            return
        self.kiosk.session.phone = number
        message.update(self.t("looking"))
        self.say(message.words)
        if not self._looking:
            self._looking = True
            self.ask(LookUp(self, number))

    def on_key(self, event: events.Key) -> None:
        super().on_key(event)
        keypad = self.query_one(Keypad)
        if event.character and event.character.isdigit():
            keypad.type_key(event.character)
        elif event.key == "backspace":
            keypad.type_key("back")
        elif event.key == "enter":
            keypad.type_key("ok")
        else:
            return
        event.stop()

    def on_look_up_found(self, message: LookUp.Found) -> None:
        from kiosk.screens.notfound import NotFoundScreen
        from kiosk.screens.pets import PetsScreen

        session, found = self.kiosk.session, message.found
        if found is None:
            # No lookup possible (known offline, or it just failed): take "this number is
            # here" as a queued check-in by phone.
            self.ask(Submit(self, "checkin", {"phone": session.phone, "appointments": []}))
            return
        session.lookup = found
        session.sms_consent = bool(found.get("sms_consent"))
        if not found.get("appointments"):
            self.ask(Go(NotFoundScreen()))
        else:
            self.ask(Go(PetsScreen(found["appointments"])))

    def on_submit_sent(self, message: Submit.Sent) -> None:
        from kiosk.screens.done import DoneScreen

        self.ask(Go(DoneScreen.after(message.sent)))
