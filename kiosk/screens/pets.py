"""Today's appointments for the number: pet names, times and vets only. Tap to choose."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Button

from kiosk.messages import Go
from kiosk.screens.base import BigButton, KioskScreen, Say
from kiosk.wording import fmt_time, parse


class PetsScreen(KioskScreen):
    def __init__(self, appointments: list[dict[str, Any]]) -> None:
        super().__init__()
        self.appointments = appointments
        open_ = [a for a in appointments if not a.get("checked_in")]
        # One pet booked: it is surely the one here. Several: the client says which came.
        self.selected: set[int] = {appointments.index(open_[0])} if len(open_) == 1 else set()

    def label(self, i: int) -> str:
        a = self.appointments[i]
        when = parse(a.get("scheduled"))
        parts = [str(a.get("pet", "")), fmt_time(self.lang, when) if when else "", str(a.get("vet", ""))]
        text = "   ·   ".join(p for p in parts if p)
        if a.get("checked_in"):
            return f"✓ {text}   ({self.t('pets_already')})"
        return ("☑  " if i in self.selected else "☐  ") + text

    def compose_body(self) -> ComposeResult:
        yield Say(self.t("pets_title"), id="title", classes="title")
        all_done = all(a.get("checked_in") for a in self.appointments)
        yield Say(self.t("pets_all_done" if all_done else "pets_hint"), id="message", classes="hint")
        with VerticalScroll(id="pets"):
            for i, a in enumerate(self.appointments):
                chosen = " -selected" if i in self.selected else ""
                yield BigButton(self.label(i), id=f"pet-{i}", classes="pet action" + chosen,
                             disabled=bool(a.get("checked_in")))
        if not all_done:
            yield BigButton(self.t("continue"), id="continue", classes="action", variant="success",
                         disabled=not self.selected)

    @on(Button.Pressed, ".pet")
    def toggle(self, event: Button.Pressed) -> None:
        i = int((event.button.id or "pet-0").removeprefix("pet-"))
        self.selected ^= {i}
        event.button.label = self.label(i)
        event.button.set_class(i in self.selected, "-selected")
        self.query_one("#continue", Button).disabled = not self.selected

    @on(Button.Pressed, "#continue")
    def next(self) -> None:
        from kiosk.screens.consent import ConsentScreen

        self.kiosk.session.selected = [str(self.appointments[i]["id"]) for i in sorted(self.selected)]
        self.ask(Go(ConsentScreen()))
