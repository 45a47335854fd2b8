"""Checked in: who, with whom, the wait (updated live), and a QR code to the status page.

Taken offline, it says so (saved, reception will have it) with no estimate, and turns into
the live screen by itself if the kiosk delivers the check-in while it is still shown. A
check-in by phone alone (no lookup was possible, so nobody picked a visit on screen) comes
back with a count only: the screen then says "checked in" (or "no booking: see the desk"),
never whose pets, vets or times the number has, and shows no QR code.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button

from kiosk.messages import Outcome, Refresh, StartOver
from kiosk.offline import Submitted
from kiosk.screens.base import BigButton, KioskScreen, Say
from kiosk.widgets.qrcode import QRCode
from kiosk.wording import parse, visit_paragraph

MAX_QR = 2  # two codes fit side by side on the lobby screen


class DoneScreen(KioskScreen):
    def __init__(self, visits: list[dict[str, Any]], now: str | None = None, consent: bool = False,
                 offline: bool = False, key: str | None = None) -> None:
        super().__init__()
        self.visits = visits
        self.now = now
        self.consent = consent
        self.offline = offline
        self.key = key  # the queued request's idempotency key, when taken offline
        self.by_phone: int | None = None  # delivered check-in by phone: how many visits it checked in
        self._refreshing = False  # a refresh is on its way: the next tick does not ask again
        self._asking = False  # asking what became of the queued request...
        self._ask_again = False  # ...and the queue moved meanwhile

    @classmethod
    def after(cls, sent: Submitted, consent: bool = False) -> DoneScreen:
        """The screen for a check-in or walk-in just sent: live, or saved in the queue."""
        if sent.answer is None:
            return cls([], consent=consent, offline=True, key=sent.key)
        screen = cls(sent.answer.get("visits", []), now=sent.answer.get("now"), consent=consent)
        if not screen.visits and isinstance(sent.answer.get("checked_in"), int):
            screen.by_phone = sent.answer["checked_in"]
        return screen

    def message(self) -> str:
        if self.by_phone is not None:
            return self.t("phone_done" if self.by_phone else "phone_done_none")
        if self.offline or not self.visits:
            return self.t("offline_done") + "\n" + self.t("offline_hint")
        now = parse(self.now)
        n = len(self.visits)
        return "\n\n".join(visit_paragraph(self.lang, v, now, first=i == 0, consent=self.consent, last=i == n - 1)
                           for i, v in enumerate(self.visits))

    def compose_body(self) -> ComposeResult:
        yield Say(self.message(), id="message", classes="message")
        yield Horizontal(*self.codes(), id="codes")
        yield BigButton(self.t("finish"), id="finish", classes="action", variant="primary")

    def codes(self) -> list[Vertical]:
        return [Vertical(QRCode(str(v["status_url"]), classes="qr"),
                         Say(self.t("scan", pet=v.get("pet", "")), classes="caption"), classes="code")
                for v in [v for v in self.visits if v.get("status_url")][:MAX_QR]]

    def on_mount(self) -> None:
        if self.visits and not self.offline:
            self.set_interval(self.kiosk.poll_s, self.poll)
        elif self.key is not None:
            self.watch(self.app, "queued", self.queue_moved, init=False)

    def queue_moved(self) -> None:
        """The offline queue changed: ask whether it has delivered this check-in."""
        if not self.offline or self.key is None:
            return
        if self._asking:
            self._ask_again = True  # answered from before this change: ask once more after it
            return
        self._asking = True
        self.ask(Outcome(self, self.key))

    async def on_outcome_known(self, message: Outcome.Known) -> None:
        """Once the queue has delivered this check-in, show its answer as if it had been live."""
        self._asking = False
        if self._ask_again:
            self._ask_again = False
            self.queue_moved()
            return
        state, answer = message.state, message.answer
        if not self.offline or state != "delivered" or not answer:
            return
        if not answer.get("visits"):
            if isinstance(answer.get("checked_in"), int):  # by phone: a count, no visit to show
                self.by_phone, self.offline = answer["checked_in"], False
                self.query_one("#message", Say).update(self.message())
            return
        self.visits, self.now, self.offline = answer["visits"], answer.get("now"), False
        # Only the body changes, in place: recomposing the whole screen would take the top bar
        # (and its status mark) away for a frame, and a tap in that frame would find no button.
        codes = self.query_one("#codes", Horizontal)
        await codes.remove_children()
        await codes.mount_all(self.codes())
        self.query_one("#message", Say).update(self.message())
        # The screen changed: read it whole again, its Finish button too, as a new screen is read.
        self.call_after_refresh(self.read_screen)
        self.set_interval(self.kiosk.poll_s, self.poll)

    @on(Button.Pressed, "#finish")
    def finish(self) -> None:
        self.ask(StartOver())

    def poll(self) -> None:
        if not self._refreshing:
            self._refreshing = True
            self.ask(Refresh(self, [str(v["appointment"]) for v in self.visits]))

    def on_refresh_fresh(self, message: Refresh.Fresh) -> None:
        """Each visit's new estimate; a failed refresh keeps the last one shown."""
        self._refreshing = False
        fresh = []
        for v in self.visits:
            answer = message.answers.get(str(v["appointment"]))
            if answer is None:
                fresh.append(v)
                continue
            got = answer.get("visits") or [v]
            fresh.append({**v, **got[0]})
            self.now = answer.get("now", self.now)
        self.visits = fresh
        self.query_one("#message", Say).update(self.message())
