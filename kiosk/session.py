"""What one client has told the kiosk so far. Replaced whole on "Start over" and idle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Session:
    lang: str = "en"
    phone: str = ""  # E.164
    lookup: dict[str, Any] = field(default_factory=dict)
    selected: list[str] = field(default_factory=list)
    sms_consent: bool = False
    walkin: dict[str, str] = field(default_factory=dict)
    # How this client wants the kiosk: chosen on the welcome screen, reset with everything else.
    read_aloud: bool = False
    large: bool = False
    contrast: bool = False
