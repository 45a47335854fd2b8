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

from notifier.store import NotifierTx
from server.domain import DayState, Estimate, Visit
from server.store.pms import PmsOps
from server.store.reports import ReportOps
from server.timeutil import tz_from

ROLES = ("pms", "kiosk", "reception", "display")


class StoreUrlError(ValueError):
    """A --db that names no store this backend can open (a SQLite file asked for another clinic,
    `?clinic=*` given to a command that works on one clinic)."""


# The choice for SQLite (issue 13 item 2): one file, one clinic; a group uses PostgreSQL.
ONE_CLINIC = ("a SQLite file holds one clinic: ?clinic=ID (and ?clinic=* for every clinic) is for a group's "
              "postgresql:// database")


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


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One entry of the event log, as stored."""

    seq: int
    at: datetime  # when it happened
    recorded_at: datetime
    type: str
    appointment: str | None
    data: dict[str, Any]
    actor: str
    vet: str | None = None  # the vet of the visit it names, now


@dataclass(frozen=True, slots=True)
class StoredVisit:
    """A visit as stored: what the estimator sees and its status (booked, waiting, in_consult,
    done, noshow, cancelled)."""

    visit: Visit
    status: str
    day: date


@dataclass(frozen=True, slots=True)
class BookedVisit:
    """A booking as a schedule import gives it (server/schedule.py): the pet is either a known
    pet's id (`pet_id`) or a bare name (`pet_name`), never both."""

    id: str
    day: date
    vet: str
    type: str | None
    pet_id: str | None
    pet_name: str | None
    scheduled: datetime
    booked_min: float


@dataclass(frozen=True, slots=True)
class VetBlock:
    """A vet's blocked time from an imported calendar (a staff meeting; reason "" if private)."""

    id: str
    vet: str
    day: date
    start: datetime
    end: datetime
    reason: str


class ScheduleOps(Protocol):
    """The schedule as a practice-management system pushes it (server/schedule.py): vets,
    appointment types, clients, pets, bookings and blocked time, each upserted by its id."""

    async def save_vet(self, vet_id: str, name: str) -> None:
        """Add a vet, or rename one."""
        ...

    async def save_appointment_type(self, type_id: str, name: str, booked_min: float) -> None:
        """Add an appointment type, or change its name and booked length."""
        ...

    async def save_client(self, client_id: str, name: str, mobile: str | None, sms_consent: bool, language: str,
                          notes: str) -> None:
        """Add a client, or replace their name, mobile (E.164), consent, language and notes."""
        ...

    async def has_client(self, client_id: str) -> bool: ...

    async def save_pet(self, pet_id: str, client_id: str | None, name: str, species: str | None, sex: str) -> None:
        """Add a pet, or replace its owner, name, species and sex."""
        ...

    async def known_pets(self, pet_ids: Iterable[str]) -> set[str]:
        """Those of `pet_ids` that are pets on record (any number of ids)."""
        ...

    async def save_bookings(self, bookings: Iterable[BookedVisit]) -> None:
        """Add appointments, or move ones still booked. A booking that has happened (checked in,
        seen, missed, cancelled) is never rewritten by a re-push."""
        ...

    async def save_vet_blocks(self, blocks: Iterable[VetBlock]) -> None:
        """Add blocked time, or replace a block of the same id."""
        ...


class VisitOps(Protocol):
    """Visits of every day and the append-only event log."""

    async def visit(self, visit_id: str) -> StoredVisit | None:
        """One visit of any day, with its status."""
        ...

    async def visits_for_day(self, day: date) -> DayState:
        """The day's vets, their away-until times, their blocked time (imported calendars) and
        every visit not cancelled: what the estimator sees."""
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

    # -- the changes events make (server/events.py) --

    async def has_vet(self, vet_id: str) -> bool: ...

    async def booked_length(self, type_id: str) -> float | None:
        """An appointment type's booked minutes (None: no such type)."""
        ...

    async def vet_unavailable_until(self, vet_id: str) -> datetime | None: ...

    async def set_vet_unavailable_until(self, vet_id: str, until: datetime | None) -> None:
        """A vet running late or away until `until` (None: available)."""
        ...

    async def count_visits(self, day: date) -> int:
        """The day's visits, cancelled ones left out."""
        ...

    async def add_arrived_visit(self, visit: Visit, day: date) -> None:
        """A walk-in or emergency, waiting since `visit.arrived`."""
        ...

    async def book_again(self, visit_id: str, new_id: str, vet_id: str, scheduled: datetime, day: date) -> None:
        """A new booked appointment `new_id` for the same pet, type and length as `visit_id`."""
        ...

    async def record_arrival(self, visit_id: str, at: datetime) -> None:
        """Checked in: waiting since `at`."""
        ...

    async def record_start(self, visit_id: str, at: datetime) -> None:
        """Called in at `at` (arrived then too, if it had not checked in)."""
        ...

    async def record_end(self, visit_id: str, at: datetime) -> None: ...

    async def set_visit_status(self, visit_id: str, status: str) -> None:
        """A status with no time of its own: noshow, cancelled."""
        ...

    async def undo_visit_event(self, visit_id: str, event_type: str) -> None:
        """Put a visit back as it was before a checkin, start, end, noshow, walkin or emergency
        (emergency_start and emergency_end too)."""
        ...

    async def move_visit(self, visit_id: str, vet_id: str, priority: float | None) -> None: ...

    async def set_visit_priority(self, visit_id: str, priority: float | None) -> None: ...

    async def texts_paused_for(self, client_id: str | None) -> bool:
        """Texts paused for this client (None: for the whole clinic)."""
        ...

    async def pause_texts(self, client_id: str | None, at: datetime, by: str) -> None: ...

    async def resume_texts(self, client_id: str | None) -> None: ...

    async def wait_in_car(self, visit_id: str, since: datetime) -> None: ...

    async def stop_waiting_in_car(self, visit_id: str) -> None: ...

    async def undone_seqs(self) -> set[int]:
        """Sequence numbers of events taken back by an `undo`."""
        ...

    async def cancel_queued_text(self, row_id: int, now: datetime, message: str) -> bool:
        """Fail an outbox row still queued (False: it has gone to the provider already)."""
        ...

    async def reopen_inbound(self, inbound_id: int) -> None:
        """Back in reception's inbox (the undo of an acknowledgement)."""
        ...

    async def forget_recovery_offer(self, visit_id: str) -> None: ...

    async def add_reschedule_request(self, provider_sid: str, number: str, body: str, visit_id: str,
                                     now: datetime) -> None:
        """A client's request to move a visit, for reception's inbox."""
        ...

    async def last_event_seq(self) -> int:
        """The newest event's sequence number (0 for an empty log)."""
        ...

    async def record_event(self, type: str, at: datetime, appointment: str | None, data: dict[str, Any],
                           actor: str, now: datetime) -> int:
        """Append to the event log (in the transaction of the change it describes); its seq."""
        ...

    async def event(self, seq: int) -> LoggedEvent | None:
        ...

    async def events_since(self, seq: int, *, types: tuple[str, ...] | None = None,
                           limit: int | None = None) -> list[LoggedEvent]:
        """Events after `seq`, oldest first, each with its visit's vet; only of `types` if given,
        at most `limit` if given."""
        ...


@dataclass(frozen=True, slots=True)
class TextContact:
    """What a text about a visit needs to know of its client, pet and vet."""

    visit_id: str
    client: str | None
    mobile: str | None  # E.164
    sms_consent: bool
    language: str
    pet: str | None
    pet_sex: str | None
    vet_name: str
    # The range the client was told at check-in (kiosk or desk), if any.
    told_p10: datetime | None
    told_p90: datetime | None


@dataclass(frozen=True, slots=True)
class ToldText:
    """A text that told a client a range: its outbox row, when it was queued and what it said."""

    id: int
    visit_id: str | None
    at: datetime
    start: datetime
    p10: datetime
    p90: datetime


@dataclass(frozen=True, slots=True)
class MobileVisit:
    """A visit not yet started of the client with a given mobile number."""

    visit_id: str
    language: str


@dataclass(frozen=True, slots=True)
class TextsPaused:
    """Reception's pauses in force: every text (`clinic`), or these clients' texts."""

    clinic: bool
    clients: frozenset[str]


class TextingOps(Protocol):
    """What the server's side of delay texts reads and keeps (server/texts.py)."""

    async def waiting_in_car(self, visit_id: str) -> bool:
        """The client said they wait in the car (texted when called in)."""
        ...

    async def texts_paused(self) -> TextsPaused:
        ...

    async def text_contacts(self, visit_ids: list[str]) -> dict[str, TextContact]:
        """Contact details of these visits' clients (visits with no vet row are left out)."""
        ...

    async def keep_first_promises(self, promised: dict[str, Estimate], now: datetime) -> None:
        """The range each visit was told, unless one is kept already (the first range stands)."""
        ...

    async def texts_told_after(self, row_id: int) -> list[ToldText]:
        """Texts that told a range (delay texts), queued after outbox row `row_id`, oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class VisitContact:
    """A visit with its pet and client, as reception sees it (None where there is no record)."""

    id: str
    kind: str
    status: str
    vet_id: str
    pet: str | None
    client_id: str | None
    client: str | None
    mobile: str | None
    sms_consent: bool
    notes: str | None
    sex: str | None
    species: str | None


@dataclass(frozen=True, slots=True)
class KioskBooking:
    """One of today's booked (or checked-in) appointments of a mobile number, as the kiosk may
    show it: pet, vet and time only."""

    id: str
    status: str
    scheduled: datetime | None
    pet: str
    sex: str | None
    species: str | None
    vet_name: str
    sms_consent: bool
    client: str


@dataclass(frozen=True, slots=True)
class BookingDetail:
    """A visit as its client's reschedule page needs it."""

    id: str
    status: str
    day: date
    vet: str
    vet_name: str
    pet: str | None
    type_name: str | None
    booked_min: float
    scheduled: datetime | None
    mobile: str | None
    sms_consent: bool
    language: str


@dataclass(frozen=True, slots=True)
class BoardVisit:
    """A visit of the day with everything reception's board shows of it (server/web/board.py)."""

    id: str
    kind: str
    status: str
    vet: str
    booked_min: float
    scheduled: datetime | None
    arrived: datetime | None
    started: datetime | None
    ended: datetime | None
    priority: float | None
    pet: str | None
    species: str | None
    sex: str | None
    client_id: str | None
    client: str | None
    mobile: str | None
    sms_consent: bool
    notes: str | None
    language: str | None
    type_name: str | None


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """A client's text that needs a person, or a reschedule request, as reception's inbox shows it."""

    id: int
    from_number: str
    body: str
    kind: str
    visit_id: str | None
    received: datetime
    client: str | None
    pet: str | None
    media: list[tuple[str, str]]  # (url, content type), in the order sent


@dataclass(frozen=True, slots=True)
class UnsettledText:
    """An outbox row held (unknown if sent) or failed, with who it was for, for reception."""

    id: int
    status: str
    kind: str
    to_number: str
    body: str
    error_code: str | None
    error_message: str | None
    written: datetime
    at: datetime  # last changed: when it was held or failed
    visit_id: str | None
    pet: str | None
    client: str | None  # the visit's client, else the first client with that mobile
    vet: str | None  # the vet's name
    scheduled: datetime | None
    opted_out: bool  # the number is on the opt-out list now


class BoardOps(Protocol):
    """What reception's board, alerts, log and inbox read (server/web/board.py)."""

    async def board_visits(self, day: date) -> list[BoardVisit]:
        """The day's visits not cancelled, with pet, client and type, by scheduled time, arrival, id."""
        ...

    async def visits_waiting_in_car(self) -> set[str]:
        """Visits whose client said they wait in the car."""
        ...

    async def told_range_ends(self, visit_ids: list[str]) -> list[tuple[str, datetime]]:
        """(visit, latest time of the range it was told), oldest first: the range kept at
        check-in, then each text that told one and did not fail."""
        ...

    async def events_by_people(self, recorded_since: datetime, also_types: tuple[str, ...],
                               limit: int) -> list[LoggedEvent]:
        """Events recorded since `recorded_since` by reception users (`user:`) or tokens
        (`token:`), or of `also_types` by anyone; newest first, at most `limit`."""
        ...

    async def events_at_or_after(self, at: datetime, types: tuple[str, ...]) -> list[LoggedEvent]:
        """Events of `types` that happened at `at` or later, newest first."""
        ...

    async def inbox_messages(self) -> list[InboxMessage]:
        """Client texts that need a person and reschedule requests, not yet handled; oldest first."""
        ...

    async def unsettled_texts(self, since: datetime | None, row_id: int | None, settled_codes: Iterable[str],
                              cancelled_message: str) -> list[UnsettledText]:
        """Outbox rows written since `since` (or just row `row_id`) that are held, or failed with
        a code not in `settled_codes` (nor `opted_out`) and not cancelled by reception (failed
        with `cancelled_message`); oldest first."""
        ...


class ClientOps(Protocol):
    """Clients and their pets."""

    async def booking_detail(self, visit_id: str) -> BookingDetail | None:
        ...

    async def vet_names(self) -> dict[str, str]:
        """Every vet's name, by id."""
        ...

    async def booked_times(self, first: date, last: date, statuses: tuple[str, ...]
                           ) -> list[tuple[str, datetime, float]]:
        """(vet, scheduled, booked minutes) of the visits of these statuses from `first` to `last`."""
        ...

    async def vets_away(self) -> dict[str, datetime]:
        """Each vet's "away until" or "running late until" on record."""
        ...

    async def blocked_times(self, first: date, last: date) -> list[tuple[str, datetime, datetime, str]]:
        """(vet, start, end, reason) of the vets' blocked time imported for `first` to `last`
        (a staff meeting; reason "" for a private event), by start."""
        ...

    async def kiosk_bookings(self, mobile: str, day: date) -> list[KioskBooking]:
        """The day's appointments (not walk-ins) of the clients with this mobile, booked or waiting,
        by scheduled time."""
        ...

    async def set_sms_consent(self, client_id: str, consent: bool) -> None:
        ...

    async def add_walkin_client(self, client_id: str, name: str, mobile: str | None, pet_id: str, pet_name: str,
                                species: str) -> None:
        """A walk-in's new client (no consent to texts yet) and pet."""
        ...

    async def link_visit_to_pet(self, visit_id: str, pet_id: str) -> None:
        ...

    async def checked_in_here(self, visit_id: str, actor: str) -> bool:
        """The visit was checked in (or walked in) by `actor` picking it on screen, not by
        phone number alone."""
        ...

    async def remembered_answer(self, key: str) -> list[str] | None:
        """The visits an idempotency key was answered with (a kiosk's re-delivered request)."""
        ...

    async def remember_answer(self, key: str, visits: list[str], now: datetime) -> None:
        ...

    async def visit_contact(self, visit_id: str) -> VisitContact | None:
        ...

    async def vet_name(self, vet_id: str) -> str | None:
        ...

    async def open_visits_for_mobile(self, mobile: str, day: date) -> list[MobileVisit]:
        """The day's booked or waiting visits of the clients with this mobile, by scheduled time."""
        ...

    async def client_language(self, visit_id: str) -> str | None:
        """The stored language of the visit's client (None: no client known)."""
        ...

    async def erase_contacts_last_seen_before(self, day: date) -> list[str]:
        """Blank the mobile, notes and consent of clients whose last visit was before `day`
        (and who still had any); their ids."""
        ...


@dataclass(frozen=True, slots=True)
class StaffSession:
    user_id: int
    name: str
    csrf: str
    expires_at: datetime
    group_admin: bool = False  # the account belongs to the group: every clinic's console, /group


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    ok: bool
    at: datetime


class StaffOps(Protocol):
    """Reception's accounts, sessions and sign-in attempts (server/web/auth.py)."""

    async def staff_name_taken(self, name: str) -> bool:
        """A user of this name exists (names compare without case)."""
        ...

    async def add_staff_user(self, name: str, password_hash: str, now: datetime, *,
                             group_admin: bool = False) -> None: ...

    async def staff_password(self, name: str) -> tuple[int, str] | None:
        """(user id, password hash) of an enabled user of this name."""
        ...

    async def staff_session(self, token_hash: str) -> StaffSession | None:
        """The session of an enabled user with this token hash (expired or not)."""
        ...

    async def open_staff_session(self, token_hash: str, user_id: int, csrf: str, now: datetime,
                                 expires_at: datetime) -> None: ...

    async def close_staff_session(self, token_hash: str) -> None: ...

    async def login_attempts(self, *, name: str | None, remote: str | None, limit: int) -> list[LoginAttempt]:
        """The latest sign-in attempts, newest first, for this name and/or address."""
        ...

    async def reserve_login_attempt(self, name: str, remote: str, now: datetime) -> int:
        """A new attempt, counted as a failure until `login_attempt_succeeded`; its id."""
        ...

    async def login_attempt_succeeded(self, attempt_id: int) -> None: ...

    async def forget_login_attempts_before(self, t: datetime) -> None: ...


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


class Tx(ClinicOps, ScheduleOps, VisitOps, ClientOps, BoardOps, TextingOps, StaffOps, TokenOps, ModelOps, NotifierTx,
         ReportOps, PmsOps, Protocol):
    """One transaction's view of the store: every named operation, by aggregate (the outbox,
    inbox, links and recovery offers as the notifier names them: notifier/store.py)."""


class Store(Protocol):
    """A clinic's database."""

    #: Bumped on every committed write that changed something (and on every rollback): lets
    #: readers cache what they derive from state.
    version: int
    #: Called after each commit or rollback (wake the notifier, keep derived caches).
    after_commit: list[Callable[[], None]]
    #: Other server processes may write to this database at the same time (PostgreSQL).
    several_processes: bool

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

    async def spend(self, key: str, window_s: float, limit: int) -> bool:
        """Charge one request to `key`'s budget of `limit` per `window_s` seconds (a kiosk token's
        lookups): False, charging nothing, when it is spent. Every process on the database
        shares the budget."""
        ...

    async def close(self) -> None:
        ...
