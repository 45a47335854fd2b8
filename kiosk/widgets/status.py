"""The top bar's words: the clinic's name, and a small mark in the corner for staff (online,
offline, or how many check-ins are queued)."""

from __future__ import annotations

from typing import Any, cast

from textual.widgets import Static

from kiosk.i18n import t
from kiosk.view import KioskView


class StatusMark(Static):
    def on_mount(self) -> None:
        self.watch(self.app, "online", self._update)
        self.watch(self.app, "queued", self._update)

    def _update(self, _: Any = None) -> None:
        app = cast(KioskView, self.app)
        lang = app.session.lang
        queued, online = int(app.queued), bool(app.online)
        self.set_class(not online, "offline")
        self.set_class(queued > 0, "queued")
        if queued:
            self.update(t(lang, "status_queued", n=queued))
        else:
            self.update(t(lang, "status_online" if online else "status_offline"))


class Brand(Static):
    """The clinic's name as the server gives it; a plain welcome until the server has answered."""

    def on_mount(self) -> None:
        self.watch(self.app, "clinic_name", self._update)

    def _update(self, _: Any = None) -> None:
        app = cast(KioskView, self.app)
        self.update(app.clinic_name or t(app.session.lang, "clinic"))
