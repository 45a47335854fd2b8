"""What the practice-management connectors keep (issue 19): each connector's sync state and the
outbox of write-backs (arrival, consult start, cancel) to the practice system. Backend-neutral:
the records and the protocol; server/store/sqlite_pms.py is the SQLite implementation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

# A write-back row's life: queued -> sent; or queued -> (retries) -> failed (reception is told);
# or task (the practice system's API cannot do it: reception does it by hand) -> done.
PMS_WRITE_STATUSES = ("queued", "sent", "failed", "task", "done")


@dataclass(slots=True)
class PmsSyncState:
    """One connector's progress: its change cursor (the practice system's own clock, never
    ours), the last event of our log it has turned into write-backs, and what the console shows."""

    pms: str
    cursor: str | None = None
    events_seen: int = 0
    last_attempt_at: datetime | None = None
    last_ok_at: datetime | None = None
    last_full_at: datetime | None = None
    last_error: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PmsWrite:
    """One write-back to the practice system."""

    id: int
    pms: str
    visit_id: str
    action: str  # arrived, started, cancelled, rescheduled
    data: dict[str, Any]
    status: str
    attempts: int
    next_at: datetime
    created_at: datetime
    last_error: str | None


@dataclass(frozen=True, slots=True)
class NewPmsWrite:
    pms: str
    dedupe: str  # one row per (event, action): a re-run never writes twice
    visit_id: str
    action: str
    data: dict[str, Any]
    status: str = "queued"  # or "task": shown to reception at once


class PmsOps(Protocol):
    """The connectors' state and write-back outbox."""

    async def pms_state(self, pms: str) -> PmsSyncState:
        """The connector's state (a fresh one before its first sync)."""
        ...

    async def save_pms_state(self, state: PmsSyncState) -> None: ...

    async def pms_booked_visits(self, prefix: str, first: date, last: date) -> dict[str, str]:
        """{visit id: status} of the appointments with ids starting `prefix` from `first` to
        `last` (clinic days), cancelled ones included."""
        ...

    async def client_preferences(self, client_ids: list[str]) -> dict[str, tuple[bool, str]]:
        """(sms consent, language) of the clients of these ids that exist: what a sync must keep
        (consent given at the kiosk, a language set here) when the practice system says nothing."""
        ...

    async def queue_pms_writes(self, rows: list[NewPmsWrite], now: datetime) -> int:
        """Add write-backs (a dedupe key seen before is skipped); how many were new."""
        ...

    async def due_pms_writes(self, pms: str, now: datetime, limit: int) -> list[PmsWrite]:
        """Queued write-backs due by `now`, oldest first."""
        ...

    async def finish_pms_write(self, row_id: int, status: str, now: datetime, *, error: str | None = None,
                               next_at: datetime | None = None) -> None:
        """Record an attempt: `status` sent / failed / task / done, or queued (again) at `next_at`
        (a failed try backing off, or reception's "try again" on a failed row)."""
        ...

    async def pms_writes(self, statuses: tuple[str, ...], limit: int) -> list[PmsWrite]:
        """Write-backs in these statuses, newest first (the console's list)."""
        ...

    async def pms_states(self) -> list[PmsSyncState]:
        """Every connector's state (the console)."""
        ...
