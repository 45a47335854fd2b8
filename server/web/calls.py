"""Names called in the lobby: when reception starts a consult, the display chimes and says
"Bella S., please come to room 2" (issue 20).

A call is a consult started in the last few minutes, read from the same board the display
shows, so an undone start is never called. The words name only the pet and the surname's
initial, in the client's language. The sound is made by server/speech.py, with Debian's espeak-ng (a local
engine: the browser's speechSynthesis may send the words to a cloud voice), as one WAV file
of a chime and the words, served only to a display token and only while the call is current.
The display's script (static/display.js) plays the calls one after another, never two at once.

Clinic settings: `lobby_calls` = "speak" (default), "show" (words on the screen, no sound) or
"off"; `vet_rooms` = {vet id: room} ("please come to room 2"). A vet without a room is named
instead: "please come to Dr. Ruiz's room".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from notifier import formats
from server.web.board import Board, VisitView, short_vet_name

WINDOW = timedelta(minutes=3)  # a consult started longer ago than this is no longer called
MODES = ("speak", "show", "off")


@dataclass(frozen=True, slots=True)
class Call:
    id: str  # opaque: the only handle the audio URL takes
    visit: str
    text: str
    lang: str
    at: str  # ISO start time: the display's order


def mode(settings: dict[str, Any]) -> str:
    value = str(settings.get("lobby_calls", "speak")).lower()
    return value if value in MODES else "speak"


def call_text(v: VisitView, vet_name: str, settings: dict[str, Any]) -> tuple[str, str]:
    """The words for calling `v`, and their language ("en" or "es")."""
    lang = "es" if (v.language or "").lower().startswith("es") else "en"
    rooms = settings.get("vet_rooms")
    room = str(rooms.get(v.vet, "")).strip() if isinstance(rooms, dict) else ""
    who = v.public_name
    short = short_vet_name(vet_name)
    if lang == "es":
        titles = settings.get("vet_titles")
        title = formats.title_of(titles.get(v.vet)) if isinstance(titles, dict) else None
        where = f"a la sala {room}" if room else f"a la consulta {formats.de_es(formats.vet_es(short, title))}"
        return f"{who}, pase {where}, por favor.", lang
    where = f"room {room}" if room else f"{short}'s room"
    return f"{who}, please come to {where}.", lang


def current_calls(board: Board) -> list[Call]:
    """Consults started within WINDOW of now, oldest first (emergencies are taken in, not called)."""
    if mode(board.settings) == "off":
        return []
    out = []
    for lane in board.lanes:
        for v in lane.current:
            if v.kind == "emergency" or v.started is None or not (timedelta(0) <= board.now - v.started <= WINDOW):
                continue
            text, lang = call_text(v, lane.name, board.settings)
            key = hashlib.sha256(f"{v.id}|{v.started.isoformat()}".encode()).hexdigest()[:20]
            out.append(Call(key, v.id, text, lang, v.started.isoformat()))
    return sorted(out, key=lambda c: (c.at, c.id))
