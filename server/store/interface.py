"""The store interface: what the rest of the server may ask of a database.

Every backend (server/store/sqlite.py today; PostgreSQL next) implements `Store` and hands out
`Tx` objects from `Store.transaction()` (a serialised write transaction) and `Store.read()`
(a consistent read). The rest of the server sees only these protocols: no SQL string and no
connection object leaves this package.

Contract, for every backend (tests/test_store_contract.py runs each one through it):

- Times cross the interface as aware `datetime`s (UTC or any zone on the way in, UTC on the
  way out); dates as `date`; booleans as `bool`; visit, client, pet, vet and type ids as the
  practice-management system's strings; event sequence numbers and outbox ids as `int`s that
  grow with time.
- A write transaction either commits all of its operations or none; two never interleave.
  Domain errors (`server.errors`) raised inside roll it back.
- Named operations are grouped by aggregate below: the clinic and its settings, visits and
  the event log, clients and pets, staff and sessions, tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any, Protocol

from server.domain import DayState, Visit
from server.timeutil import tz_from

ROLES = ("pms", "kiosk", "reception", "display")


@dataclass(slots=True)
class Clinic:
    name: str
    timezone: str
    region: str = "US"
    phone: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def tz(self) -> tzinfo:
        return tz_from(self.timezone)

    def settings_json(self) -> str:
        return json.dumps(self.settings)


# -- aggregates ---------------------------------------------------------------------------------


class ClinicOps(Protocol):
    """The clinic row and its settings."""

    async def clinic(self) -> Clinic:
        """The clinic; a placeholder ("Clinic", UTC) before one is set."""
        ...

    async def set_clinic(self, clinic: Clinic) -> None:
        """Create or replace the clinic (an unknown timezone is refused before it is stored)."""
        ...


class ScheduleOps(Protocol):
    """The schedule's reference data: vets and appointment types (from the PMS)."""

    async def save_vet(self, vet_id: str, name: str) -> None:
        """Add a vet, or rename one."""
        ...

    async def save_appointment_type(self, type_id: str, name: str, booked_min: float) -> None:
        """Add an appointment type, or change its name and booked length."""
        ...


class VisitOps(Protocol):
    """Visits of every day and the append-only event log."""

    async def visits_for_day(self, day: date) -> DayState:
        """The day's vets, their away-until times and every visit not cancelled: what the
        estimator sees."""
        ...

    async def finished_visits_before(self, day: date) -> list[Visit]:
        """Finished visits (done or no-show) of the days before `day`: what the model learns from."""
        ...

    async def booked_lengths(self) -> dict[str, float]:
        """Each appointment type's booked length in minutes."""
        ...

    async def add_history(self, visits: Iterable[Visit], tz: tzinfo) -> int:
        """Bulk-load finished visits of earlier days (replay's history, a PMS back-fill);
        unknown types are added with the visit's booked length. Returns rows written."""
        ...

    async def last_event_seq(self) -> int:
        """The newest event's sequence number (0 for an empty log)."""
        ...


class TokenOps(Protocol):
    """API tokens (stored hashed)."""

    async def create_token(self, role: str, name: str, now: datetime) -> str:
        """A new token for `role` (one of ROLES; ValueError otherwise), returned once."""
        ...

    async def token_role(self, token: str) -> tuple[str, str] | None:
        """(role, name) of a valid, unrevoked token; None otherwise."""
        ...


class ModelOps(Protocol):
    """Learned models kept by `waitroom learn`."""

    async def keep_model(self, data: dict[str, Any], now: datetime) -> int:
        ...


class Tx(ClinicOps, ScheduleOps, VisitOps, TokenOps, ModelOps, Protocol):
    """One transaction's view of the store: every named operation, by aggregate."""


class Store(Protocol):
    """A clinic's database."""

    #: Bumped on every committed write that changed something (and on every rollback): lets
    #: readers cache what they derive from state.
    version: int
    #: Called after each commit or rollback (wake the notifier, keep derived caches).
    after_commit: list[Callable[[], None]]

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """The one write path: serialised, all or nothing, durable before the block ends."""
        ...

    def read(self) -> AbstractAsyncContextManager[Tx]:
        """Reads that do not need the write lock (a reader may see the newest committed state).
        Writing through it is an error."""
        ...

    async def clinic(self) -> Clinic:
        """The clinic, read outside any transaction (it changes rarely)."""
        ...

    async def migrate(self) -> list[str]:
        """Apply the backend's numbered migrations not yet recorded; names applied."""
        ...

    async def writes_settled(self, timeout: float) -> None:
        """Wait until no write is running or waiting, for at most `timeout` seconds."""
        ...

    async def wait_for_change(self, since: int, timeout: float) -> bool:
        """Wait until a write newer than version `since` commits; False on timeout."""
        ...

    async def close(self) -> None:
        ...
