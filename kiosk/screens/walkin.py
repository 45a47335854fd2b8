"""Walk-in: name, pet's name, species, reason (short choices), then the walk-in queue."""

from __future__ import annotations

from typing import Literal

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button

from kiosk.messages import Go, Submit
from kiosk.screens.base import BigButton, KioskScreen, Say
from kiosk.widgets.keypad import Keypad, echo

Step = Literal["name", "pet", "species", "reason"]
SPECIES = ("dog", "cat", "other")
REASONS = ("sick", "injury", "vaccination", "check-up", "other")  # the server's walk-in reasons


class WalkinScreen(KioskScreen):
    def __init__(self, step: Step = "name") -> None:
        super().__init__(classes=f"step-{step}")
        self.step = step

    def compose_body(self) -> ComposeResult:
        data = self.kiosk.session.walkin
        if self.step in ("name", "pet"):
            yield Say(self.t(f"walkin_{self.step}_title"), id="title", classes="title")
            yield Say(data.get(self.step, "") or " ", id="typed", classes="typed")
            yield Say(self.t("walkin_hint"), id="message", classes="hint")
            yield Keypad("letters", self.lang, max_length=40, id="keypad")
        elif self.step == "species":
            yield Say(self.t("walkin_species"), id="title", classes="title")
            with Horizontal(classes="choices"):
                for s in SPECIES:
                    yield BigButton(self.t(f"species_{s}"), id=f"species-{s}", classes="action choice species")
        else:
            yield Say(self.t("walkin_reason_title"), id="title", classes="title")
            for r in REASONS:
                yield BigButton(self.t(f"reason_{r}"), id=f"reason-{r}", classes="action choice reason")

    def on_mount(self) -> None:
        typed = self.kiosk.session.walkin.get(self.step, "")
        for keypad in self.query(Keypad).results(Keypad):
            keypad.value = typed

    @on(Keypad.Changed)
    def changed(self, event: Keypad.Changed) -> None:
        self.say(echo(self.lang, event.previous, event.value))
        self.query_one("#typed", Say).update(event.value or " ")

    @on(Keypad.Submitted)
    def submitted(self, event: Keypad.Submitted) -> None:
        value = event.value.strip()
        if not value:
            return
        self.kiosk.session.walkin[self.step] = value
        self.ask(Go(WalkinScreen("pet" if self.step == "name" else "species")))

    @on(Button.Pressed, ".species")
    def species(self, event: Button.Pressed) -> None:
        self.kiosk.session.walkin["species"] = (event.button.id or "").removeprefix("species-")
        self.ask(Go(WalkinScreen("reason")))

    @on(Button.Pressed, ".reason")
    def reason(self, event: Button.Pressed) -> None:
        for b in self.query(".reason").results(Button):
            b.disabled = True  # one tap, one walk-in
        self.kiosk.session.walkin["reason"] = (event.button.id or "").removeprefix("reason-")
        w = self.kiosk.session.walkin
        self.ask(Submit(self, "walkin", {k: w[k] for k in ("name", "pet", "species", "reason")}))

    def on_submit_sent(self, message: Submit.Sent) -> None:
        from kiosk.screens.done import DoneScreen

        self.ask(Go(DoneScreen.after(message.sent)))
