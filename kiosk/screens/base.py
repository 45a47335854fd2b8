"""What every kiosk screen shares: the top bar with the staff mark and "Start over", and
the one place where a failed network worker turns into a friendly screen."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static
from textual.worker import Worker, WorkerState

from kiosk.i18n import t
from kiosk.widgets.status import StatusMark

if TYPE_CHECKING:
    from kiosk.app import KioskApp


class KioskMixin:
    @property
    def kiosk(self) -> KioskApp:
        return cast("KioskApp", self.app)  # type: ignore[attr-defined]

    @property
    def lang(self) -> str:
        return self.kiosk.session.lang

    def t(self, key: str, **kw: object) -> str:
        return t(self.lang, key, **kw)

    def top_bar(self) -> ComposeResult:
        with Horizontal(id="topbar"):
            yield Static(self.t("clinic"), id="brand")
            yield StatusMark(id="status")
            yield Button(self.t("start_over"), id="start-over", classes="start-over")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        # A plain handler, not @on: decorated handlers on a mixin are not registered.
        if event.button.id == "start-over":
            event.stop()
            self.kiosk.start_over()

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self.kiosk.touch()

    def on_key(self, event: events.Key) -> None:
        self.kiosk.touch()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The one place worker failures end up: the client sees a friendly screen.
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.kiosk.handle_failure(event.worker.error)


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
