"""Open slots for the reschedule page, over plain data (the server supplies the schedule)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Slot:
    vet: str
    start: datetime
    end: datetime


def open_slots(
    working: Mapping[str, Sequence[tuple[datetime, datetime]]],
    busy: Mapping[str, Iterable[tuple[datetime, datetime]]],
    length: timedelta,
    now: datetime,
    *,
    vet: str | None = None,
    step: timedelta = timedelta(minutes=15),
    limit: int = 20,
    min_notice: timedelta = timedelta(hours=1),
) -> list[Slot]:
    """Free slots of `length` starting on `step` boundaries inside each vet's working
    periods (`working[vet]`: (start, end) per day) that overlap no booked visit
    (`busy[vet]`), from `now + min_notice`; one vet's or every vet's, earliest first."""
    out: list[Slot] = []
    earliest = now + min_notice
    for v in sorted(working) if vet is None else [vet]:
        taken = sorted(busy.get(v, ()))
        for p_start, p_end in sorted(working.get(v, ())):
            t = p_start
            while t + length <= p_end:
                end = t + length
                if t >= earliest and all(end <= b0 or t >= b1 for b0, b1 in taken):
                    out.append(Slot(v, t, end))
                t += step
    out.sort(key=lambda s: (s.start, s.vet))
    return out[:limit]
