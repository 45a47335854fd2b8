"""What a kiosk screen asks of the app: Textual messages, posted by the screen, handled by KioskApp.

A screen never reaches into the app (issue 12 item 5). It reads the client's session and a
few settings through `KioskView` (kiosk/screens/base.py) and asks for everything else here;
tests/test_architecture_kiosk.py keeps it so. The messages bubble from the screen to the app.

Requests that need an answer (a lookup, a submission, a refresh) carry the screen that asked,
and the app posts the answer back to it: an answer for a screen the client has already left
goes nowhere. The network work runs in the app's workers, and their failures end in one place
(`KioskApp.handle_failure`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.message import Message
from textual.message_pump import MessagePump
from textual.screen import ModalScreen, Screen

from kiosk.api import JSON, Kind
from kiosk.offline import Submitted


class Go(Message):
    """Show `screen` in place of the current one (closing any open question first)."""

    def __init__(self, screen: Screen[Any]) -> None:
        super().__init__()
        self.screen = screen


class StartOver(Message):
    """Back to Welcome, forgetting everything this client typed."""


class Touched(Message):
    """The client touched the screen or pressed a key: the idle time-out starts again."""


class Speak(Message):
    """Say `text` in the client's language, if they asked for reading aloud."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class StopSpeaking(Message):
    """Reading aloud was turned off: stop what is being said."""


class Ask(Message):
    """Open a yes/no question over the current screen; `answered` gets the answer."""

    def __init__(self, modal: ModalScreen[bool], answered: Callable[[bool | None], None]) -> None:
        super().__init__()
        self.modal = modal
        self.answered = answered


class Failed(Message):
    """Something failed that the client cannot fix: the friendly screen."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class Answer(Message):
    """The app's answer to a `Request`, posted to the screen that asked (and no further)."""

    bubble = False


class Request(Message):
    """A question for the app, answered by a message posted back to `asker`."""

    def __init__(self, asker: MessagePump) -> None:
        super().__init__()
        self.asker = asker

    def answer(self, reply: Answer) -> None:
        self.asker.post_message(reply)


class Submit(Request):
    """Send a check-in, walk-in or urgent call through the offline queue."""

    def __init__(self, asker: MessagePump, kind: Kind, payload: JSON) -> None:
        super().__init__(asker)
        self.kind = kind
        self.payload = payload

    class Sent(Answer):
        """The server's answer (`sent.answer`), or None when it was saved in the queue."""

        def __init__(self, sent: Submitted) -> None:
            super().__init__()
            self.sent = sent


class LookUp(Request):
    """Today's bookings for a mobile number."""

    def __init__(self, asker: MessagePump, number: str) -> None:
        super().__init__(asker)
        self.number = number

    class Found(Answer):
        """The server's answer; None when no lookup was possible (the kiosk is offline)."""

        def __init__(self, found: JSON | None) -> None:
            super().__init__()
            self.found = found


class Refresh(Request):
    """The live estimates of visits this kiosk checked in."""

    def __init__(self, asker: MessagePump, appointments: list[str]) -> None:
        super().__init__(asker)
        self.appointments = appointments

    class Fresh(Answer):
        """Each visit's answer by appointment id (None where the refresh failed)."""

        def __init__(self, answers: dict[str, JSON | None]) -> None:
            super().__init__()
            self.answers = answers


class Outcome(Request):
    """What became of a request taken offline (its idempotency key)."""

    def __init__(self, asker: MessagePump, key: str) -> None:
        super().__init__(asker)
        self.key = key

    class Known(Answer):
        def __init__(self, state: str, answer: JSON | None) -> None:
            super().__init__()
            self.state = state
            self.answer = answer
