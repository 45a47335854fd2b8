"""What the practice manager's reports read (issue 17): named, read-only queries over visits, the
event log and the texts, by a range of clinic days. Backend-neutral: the dataclasses and the
protocol; server/store/sqlite_reports.py is the SQLite implementation (portable SQL: plain
SELECTs with joins and ranges on the canonical time text, nothing SQLite-only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from server.store.interface import LoggedEvent


@dataclass(frozen=True, slots=True)
class ReportVisit:
    """A visit of the period, with the names a report shows."""

    id: str
    kind: str  # appointment, walkin, emergency
    day: date
    vet: str
    vet_name: str
    type_id: str | None
    type_name: str | None
    pet: str | None
    client: str | None
    scheduled: datetime | None
    booked_min: float
    status: str
    arrived: datetime | None
    started: datetime | None
    ended: datetime | None


@dataclass(frozen=True, slots=True)
class ToldRange:
    """A range a client was told: at check-in (`source` "checkin") or by a text ("text")."""

    visit_id: str
    at: datetime
    start: datetime
    p10: datetime
    p90: datetime
    source: str


@dataclass(frozen=True, slots=True)
class ReportText:
    """One outbox row (a text we meant to send)."""

    id: int
    visit_id: str | None
    kind: str
    status: str
    segments: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReportReply:
    """One text a client sent us, as the notifier classified it."""

    kind: str
    visit_id: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class ReportRecovery:
    visit_id: str
    gesture: str
    offered_at: datetime


class ReportOps(Protocol):
    """Read-only queries for server/reports.py; `first`/`last` are clinic days, both included;
    `since`/`until` the same period as UTC instants (until excluded)."""

    async def report_visits(self, first: date, last: date, vet: str | None) -> list[ReportVisit]:
        """Every visit of the days (cancelled ones too), of one vet if given, by day and scheduled time."""
        ...

    async def report_told(self, first: date, last: date) -> list[ToldRange]:
        """Every range told to the clients of the days' visits (check-in promises and texts), by time."""
        ...

    async def report_texts(self, since: datetime, until: datetime) -> list[ReportText]:
        """Outbox rows created in the period, oldest first."""
        ...

    async def report_replies(self, since: datetime, until: datetime) -> list[ReportReply]:
        ...

    async def report_opt_outs(self, since: datetime, until: datetime) -> int:
        """Numbers that opted out in the period (and have not opted back in)."""
        ...

    async def report_events(self, since: datetime, until: datetime, types: tuple[str, ...]) -> list[LoggedEvent]:
        """Events of these types that happened in the period (by `at`), oldest first, with their visit's vet."""
        ...

    async def report_notes(self, first: date, last: date) -> list[LoggedEvent]:
        """Reception's notes (report_note events) on the days' visits, whenever written, oldest first."""
        ...

    async def report_recoveries(self, first: date, last: date) -> list[ReportRecovery]:
        """Service-recovery gestures recorded for the days' visits."""
        ...
