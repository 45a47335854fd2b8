"""Checked in: who, with whom, the wait (updated live), and a QR code to the status page."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from kiosk.api import KioskError
from kiosk.screens.base import KioskScreen
from kiosk.widgets.qrcode import QRCode
from kiosk.wording import parse, visit_paragraph

MAX_QR = 2  # two codes fit side by side on the lobby screen


class DoneScreen(KioskScreen):
    def __init__(self, visits: list[dict[str, Any]], now: str | None = None, consent: bool = False,
                 offline: bool = False) -> None:
        super().__init__()
        self.visits = visits
        self.now = now
        self.consent = consent
        self.offline = offline

    def message(self) -> str:
        if self.offline or not self.visits:
            return self.t("offline_done") + "\n" + self.t("offline_hint")
        now = parse(self.now)
        n = len(self.visits)
        return "\n\n".join(visit_paragraph(self.lang, v, now, first=i == 0, consent=self.consent, last=i == n - 1)
                           for i, v in enumerate(self.visits))

    def compose_body(self) -> ComposeResult:
        yield Static(self.message(), id="message", classes="message")
        with Horizontal(id="codes"):
            for v in [v for v in self.visits if v.get("status_url")][:MAX_QR]:
                with Vertical(classes="code"):
                    yield QRCode(str(v["status_url"]), classes="qr")
                    yield Static(self.t("scan", pet=v.get("pet", "")), classes="caption")
        yield Button(self.t("finish"), id="finish", classes="action", variant="primary")

    def on_mount(self) -> None:
        if self.visits and not self.offline:
            self.set_interval(self.kiosk.poll_s, self.poll)

    @on(Button.Pressed, "#finish")
    def finish(self) -> None:
        self.kiosk.start_over()

    @work(exclusive=True, group="poll", exit_on_error=False)
    async def poll(self) -> None:
        """Refresh each visit's estimate; a failed refresh keeps the last one shown."""
        fresh = []
        for v in self.visits:
            try:
                answer = await self.kiosk.api.visit(str(v["appointment"]))
            except KioskError:
                fresh.append(v)
                continue
            got = answer.get("visits") or [v]
            fresh.append({**v, **got[0]})
            self.now = answer.get("now", self.now)
        self.visits = fresh
        self.query_one("#message", Static).update(self.message())
