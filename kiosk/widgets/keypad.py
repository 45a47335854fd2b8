"""A big on-screen keypad: digits for phone numbers, letters for names."""

from __future__ import annotations

from typing import Literal

from textual import events, on
from textual.app import ComposeResult
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Button

from kiosk.i18n import t
from kiosk.widgets.bigtext import BigButton

DIGIT_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "back", "0", "ok"]
LETTER_KEYS = [*"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "-", "'", "back", "space", "ok"]


class KeyButton(BigButton):
    """A key that takes every tap: a plain Button ignores a second tap during its 0.2 s
    "pressed" flash, which would lose the second 5 of "55"."""

    can_focus = False  # Enter on a physical keyboard must mean OK, not "press 5 again"
    tight = True  # in large text, a key is as tall as its own label

    async def _on_click(self, event: events.Click) -> None:
        event.stop()
        self.press()


def echo(lang: str, previous: str, value: str) -> str:
    """What reading aloud says for one key: the digit or letter typed, or "deleted 5"."""
    if abs(len(value) - len(previous)) != 1:
        return ""  # not one key: a screen filling in what was typed before
    if value.startswith(previous) and len(value) > len(previous):
        added = value[len(previous):]
        return t(lang, "say_space") if added.isspace() else added.strip()
    if previous.startswith(value) and len(previous) > len(value):
        gone = previous[len(value):].strip()
        return f"{t(lang, 'say_deleted')} {gone}".strip()
    return ""


class Keypad(Widget):
    """Buttons that type into `value`; OK posts `Keypad.Submitted`.

    Every key is a Button with id `key-<char>` (`key-back`, `key-ok`, `key-space`), so a
    tap, a test's `pilot.click("#key-5")` and a physical key all go the same way.
    """

    value: reactive[str] = reactive("")

    class _Value(Message):
        """What the keypad holds, with the keypad that sent it."""

        def __init__(self, keypad: Keypad, value: str, previous: str = "") -> None:
            super().__init__()
            self.keypad = keypad
            self.value = value
            self.previous = previous

        @property
        def control(self) -> Keypad:
            return self.keypad

    class Changed(_Value):
        """The value changed (a key was tapped)."""

    class Submitted(_Value):
        """OK was tapped."""

    def __init__(self, layout: Literal["digits", "letters"] = "digits", lang: str = "en", max_length: int = 15,
                 *, id: str | None = None) -> None:
        super().__init__(id=id, classes=layout)
        self.layout_kind = layout
        self.lang = lang
        self.max_length = max_length

    def compose(self) -> ComposeResult:
        for key in DIGIT_KEYS if self.layout_kind == "digits" else LETTER_KEYS:
            if key == "back":
                button = KeyButton(t(self.lang, "key_back"), id="key-back", classes="key special", name="back")
            elif key == "ok":
                button = KeyButton(t(self.lang, "key_ok"), id="key-ok", classes="key ok", variant="success", name="ok")
            elif key == "space":
                button = KeyButton(t(self.lang, "key_space"), id="key-space", classes="key special", name="space")
            else:
                ident = {"-": "dash", "'": "apos"}.get(key, key)
                button = KeyButton(key, id=f"key-{ident}", classes="key", name=key)
            yield button

    def type_key(self, key: str) -> None:
        """Apply one key: a character, "back", "space" or "ok"."""
        if key == "ok":
            self.post_message(self.Submitted(self, self.value))
            return
        if key == "back":
            self.value = self.value[:-1]
        elif key == "space":
            if self.value and not self.value.endswith(" "):
                self.value = (self.value + " ")[: self.max_length]
        elif len(self.value) < self.max_length:
            self.value += key if self.layout_kind == "digits" or not self.value[-1:].isalpha() else key.lower()

    def clear(self) -> None:
        self.value = ""

    def watch_value(self, previous: str, value: str) -> None:
        self.post_message(self.Changed(self, value, previous))

    @on(Button.Pressed, ".key")
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        ident = (event.button.id or "").removeprefix("key-")
        self.type_key(event.button.name or ident)
