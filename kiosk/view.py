"""All a screen or widget may read of the kiosk app; everything else it asks for with a message
(kiosk/messages.py). tests/test_architecture_kiosk.py holds the screens to this list."""

from __future__ import annotations

from typing import Protocol

from kiosk.demo import DemoNote
from kiosk.session import Session


class KioskView(Protocol):
    session: Session  # what this client has told the kiosk: the screens fill it in
    region: str  # the clinic's phone-number region
    poll_s: float  # how often a shown estimate is refreshed
    demo: DemoNote | None  # `waitroom demo`'s line under the top bar
    clinic_name: str  # the top bar's words, once the server has told them ("" before)
    online: bool  # the last request reached the server
    queued: int  # requests waiting in the offline queue
