"""The mobile number, typed on the big keypad and checked with phonenumbers."""

from __future__ import annotations

import phonenumbers
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Center
from textual.widgets import Digits

from kiosk.api import ServerUnreachable
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
    def compose_body(self) -> ComposeResult:
        yield Say(self.t("phone_title"), id="title", classes="title")
        yield Digits("", id="number")
        yield Say(self.t("phone_hint"), id="message", classes="hint")
        with Center(id="keypad-row"):
            yield Keypad("digits", self.lang, max_length=15, id="keypad")

    @on(Keypad.Changed)
    def changed(self, event: Keypad.Changed) -> None:
        self.kiosk.say(echo(self.lang, event.previous, event.value))
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
            self.kiosk.say(message.words)
            return
        self.kiosk.session.phone = number
        message.update(self.t("looking"))
        self.kiosk.say(message.words)
        self.look_up(number)

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

    @work(exclusive=True, exit_on_error=False)
    async def look_up(self, number: str) -> None:
        from kiosk.screens.done import DoneScreen
        from kiosk.screens.notfound import NotFoundScreen
        from kiosk.screens.pets import PetsScreen

        # No lookup possible (known offline: it would only wait out the timeout; or it just
        # failed): take "this number is here" as a queued check-in by phone.
        by_phone = {"phone": number, "appointments": []}
        if not self.kiosk.online:
            self.kiosk.go(DoneScreen.after(await self.kiosk.send("checkin", by_phone)))
            return
        try:
            found = await self.kiosk.api.lookup(number)
        except ServerUnreachable:
            self.kiosk.online = False
            self.kiosk.go(DoneScreen.after(await self.kiosk.send("checkin", by_phone)))
            return
        self.kiosk.online = True
        self.kiosk.session.lookup = found
        self.kiosk.session.sms_consent = bool(found.get("sms_consent"))
        if not found.get("appointments"):
            self.kiosk.go(NotFoundScreen())
        else:
            self.kiosk.go(PetsScreen(found["appointments"]))
