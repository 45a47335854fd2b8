"""What every kiosk screen shares: the top bar with the clinic's name, the staff mark, "Read
aloud" and "Start over", reading the screen aloud, the client's display modes, and what a
screen may know of the app (`KioskView`); everything else it asks for with a message
(kiosk/messages.py), so no screen imports the app."""

from __future__ import annotations

from typing import cast

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Button, Digits, Static
from textual.worker import Worker, WorkerState

from kiosk.i18n import t
from kiosk.messages import Failed, Speak, StartOver, StopSpeaking, Touched
from kiosk.view import KioskView
from kiosk.widgets.bigtext import BigButton, Say, label_text
from kiosk.widgets.keypad import KeyButton, Keypad
from kiosk.widgets.qrcode import QRCode
from kiosk.widgets.status import Brand, StatusMark

SPOKEN_CLASSES = ("title", "hint", "message", "caption", "number")
MIN_SIZE = (80, 24)  # the smallest terminal every screen fits (kiosk.tcss's compact layout)


class KioskMixin:
    START_OVER = True  # the top bar's "Start over" (not where there is nothing to start over)

    @property
    def kiosk(self) -> KioskView:
        return cast(KioskView, self.app)  # type: ignore[attr-defined]

    def ask(self, message: Message) -> None:
        """Post `message` to the app (kiosk/messages.py: it bubbles up from this screen)."""
        cast(Widget, self).post_message(message)

    def say(self, text: str) -> None:
        self.ask(Speak(text))

    @property
    def lang(self) -> str:
        return self.kiosk.session.lang

    def t(self, key: str, **kw: object) -> str:
        return t(self.lang, key, **kw)

    def top_bar(self) -> ComposeResult:
        with Horizontal(id="topbar"):
            yield Brand(self.kiosk.clinic_name or self.t("clinic"), id="brand")
            yield StatusMark(id="status")
            yield self.read_aloud_button()
            if self.START_OVER:
                yield Button(self.t("start_over"), id="start-over", classes="start-over")
        if self.kiosk.demo is not None:
            yield Static(self.kiosk.demo.line(self.lang), id="demo")
        yield Static(self.t("too_small"), id="too-small")  # shown only below MIN_SIZE

    def read_aloud_button(self) -> Button:
        on = self.kiosk.session.read_aloud
        return Button(self.t("read_aloud_stop" if on else "read_aloud"), id="read-aloud",
                      classes="read-aloud" + (" -on" if on else ""))

    def apply_modes(self) -> None:
        """The client's large-text and high-contrast choices, as classes on this screen."""
        session = self.kiosk.session
        screen = cast(Screen[object], self)
        screen.set_class(session.large, "-large")
        screen.set_class(session.contrast, "-contrast")

    # Reading aloud ---------------------------------------------------------------------------

    def speech(self) -> str:
        """What this screen says aloud: its question first, then its other words, then its
        buttons in order, "Start over" last (the top bar is for staff's eyes first)."""
        node = cast(Widget, self)
        question: list[str] = []
        texts: list[str] = []
        buttons: list[str] = []
        for w in node.query("*"):
            if w.id in ("brand", "status", "read-aloud", "start-over") or isinstance(w, (QRCode, KeyButton)):
                continue
            if isinstance(w, Keypad):
                buttons.append(self.t("say_keypad_digits" if w.layout_kind == "digits" else "say_keypad_letters"))
            elif isinstance(w, Button):
                buttons.append(self.button_words(w))
            elif isinstance(w, Digits):
                if w.value.strip():
                    texts.append(" ".join(ch for ch in w.value if ch.isdigit()))
            elif isinstance(w, Say) and any(w.has_class(c) for c in SPOKEN_CLASSES) and w.words.strip():
                (question if w.has_class("title") and not question else texts).append(w.words)
        if node.query("#start-over"):
            buttons.append(self.t("start_over"))
        return " ".join(sentence(p) for p in question + texts + buttons if p.strip())

    def button_words(self, button: Button) -> str:
        label = label_text(button)
        if label.lstrip().startswith("☑") or (button.has_class("-selected") and "☐" not in label):
            label += ", " + self.t("say_selected")
        elif label.lstrip().startswith("☐"):
            label += ", " + self.t("say_not_selected")
        return label

    def read_screen(self) -> None:
        self.say(self.speech())

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        self.apply_modes()
        if self.kiosk.session.read_aloud and not getattr(self, "_read_once", False):
            self._read_once = True
            cast(Widget, self).call_after_refresh(self.read_screen)

    def toggle_read_aloud(self) -> None:
        session = self.kiosk.session
        session.read_aloud = not session.read_aloud
        button = cast(Widget, self).query_one("#read-aloud", Button)
        button.label = self.t("read_aloud_stop" if session.read_aloud else "read_aloud")
        button.set_class(session.read_aloud, "-on")
        if session.read_aloud:
            self.read_screen()
        else:
            self.ask(StopSpeaking())

    # Taps -----------------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        # A plain handler, not @on: decorated handlers on a mixin are not registered.
        if event.button.id == "start-over":
            event.stop()
            self.ask(StartOver())
        elif event.button.id == "read-aloud":
            event.stop()
            self.toggle_read_aloud()

    def on_resize(self, event: events.Resize) -> None:
        # Smaller than the compact layout fits: say what size the kiosk needs.
        cast(Widget, self).set_class(event.size.width < MIN_SIZE[0] or event.size.height < MIN_SIZE[1], "-tiny")

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self.ask(Touched())

    def on_key(self, event: events.Key) -> None:
        self.ask(Touched())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # A screen's own worker that fails ends where the app's requests do: a friendly screen.
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.ask(Failed(event.worker.error))


def sentence(text: str) -> str:
    """A part ending in a stop, so the voice pauses between a question and each button."""
    text = " ".join(text.split())
    return text if text[-1:] in ".?!:…" else text + "."


class KioskScreen(KioskMixin, Screen[None]):
    """A full kiosk screen: top bar, then `compose_body()`."""

    def compose(self) -> ComposeResult:
        yield from self.top_bar()
        with Vertical(id="body"):
            yield from self.compose_body()

    def compose_body(self) -> ComposeResult:
        yield from ()


class KioskModal(KioskMixin, ModalScreen[bool]):
    """A yes/no question over the current screen, closed with `dismiss()`."""


__all__ = ["BigButton", "KioskModal", "KioskScreen", "Say"]
