"""Plain data shared by the store, the estimator and the replay: no I/O here.

A `Visit` is one consult slot on one vet's day: a booked appointment, a walk-in or an
emergency. The same shape describes a finished visit in history (every time filled in) and a
visit of today as far as it has happened (times still None where it has not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

VisitKind = Literal["appointment", "walkin", "emergency"]
VISIT_KINDS: tuple[VisitKind, ...] = ("appointment", "walkin", "emergency")

DEFAULT_EMERGENCY_MIN = 45.0


@dataclass(slots=True)
class Visit:
    """One visit; all datetimes are timezone-aware."""

    id: str
    kind: VisitKind
    vet: str
    type: str | None
    booked_min: float
    scheduled: datetime | None = None  # None for walk-ins and emergencies
    arrived: datetime | None = None  # check-in (walk-ins and emergencies: when they came)
    started: datetime | None = None
    ended: datetime | None = None
    noshow: bool = False
    expected_min: float | None = None  # emergencies: the length reception announced
    pet: str | None = None
    # Reception's "move up / move down": visits with a priority sort before their
    # scheduled-time peers (lower first); None keeps the ordinary order.
    priority: float | None = None

    @property
    def pending(self) -> bool:
        """Owed an estimate: not started, not a no-show, and (walk-ins) checked in."""
        if self.started is not None or self.noshow:
            return False
        if self.kind == "walkin" and self.arrived is None:
            return False
        return True

    @property
    def in_consult(self) -> bool:
        return self.started is not None and self.ended is None


@dataclass(slots=True)
class DayState:
    """Everything the estimator may know about today at a moment.

    `vet_unavailable_until` holds reception's "running late by N min" / "away until"
    overrides: that vet starts nobody before that time. `blocks` holds each vet's blocked
    time of the day (an imported staff meeting, lunch): (start, end) pairs, by start; the vet
    starts nobody inside one, and goes to it once free.
    """

    vets: list[str]
    visits: dict[str, Visit] = field(default_factory=dict)
    vet_unavailable_until: dict[str, datetime] = field(default_factory=dict)
    blocks: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Estimate:
    """When a visit's consult is expected to start: the median and an 80% range."""

    visit: str
    start: datetime
    p10: datetime
    p90: datetime
