"""Today's clinic as the web pages show it: lanes per vet, visits with their estimates.

One read of the store and the estimator per render, shared by the console, the lobby
display and the client status page, so the three never disagree.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import phonenumbers

from notifier import formats
from notifier.outbox import HELD_IMPLAUSIBLE, SETTLED_CODES
from server.domain import DayState, Estimate
from server.estimator import dispatch_order
from server.hours import page_span
from server.phones import line_kind
from server.runtime import ClinicRuntime
from server.store import Tx

# How far past the promised range a waiting client is, as the console colours it.
BANDS = ((0.0, "ontime"), (0.001, "past"), (15.0, "late"), (30.0, "verylate"))
# A client's own change to a visit they had checked in for: reception should know they may be
# sitting in the lobby for a visit that is no longer there.
MOVED_AWAY: tuple[str, ...] = ("reschedule", "cancel_visit")
ALERT_TYPES: tuple[str, ...] = ("urgent", "kiosk_unmatched", *MOVED_AWAY)
# A client's own changes by text link: Recent actions shows them beside reception's.
CLIENTS_OWN: tuple[str, ...] = (*MOVED_AWAY, "reschedule_request")
# No clinic runs more than this behind; a figure past it says the data is wrong, and the
# pages say "more than 8 h" rather than "about 38444505 min" (render.behind_text).
MAX_BEHIND_MIN = 8 * 60


@dataclass(slots=True)
class VisitView:
    id: str
    kind: str
    status: str
    vet: str
    pet: str
    species: str | None
    sex: str | None
    client_id: str | None
    client_name: str | None
    mobile: str | None
    sms_consent: bool
    notes: str
    type_name: str | None
    booked_min: float
    scheduled: datetime | None
    arrived: datetime | None
    started: datetime | None
    ended: datetime | None
    priority: float | None
    estimate: Estimate | None = None
    in_car: bool = False
    texts_paused: bool = False
    promised: datetime | None = None  # the latest end of a range we told the client
    past_min: float = 0.0  # minutes past that promise (until now, or until the consult began)
    recovery: str | None = None  # the gesture reception should offer, if owed
    recovery_offered: bool = False
    language: str | None = None  # the client's, for words said to them (lobby calls)
    no_text_kind: str | None = None  # "landline", "toll-free number": the number takes no texts
    phone: str | None = None  # the number as the desk dials it, shown when texts cannot reach it

    @property
    def public_name(self) -> str:
        """Pet and the client's surname initial: all the lobby may see ("Luna L.")."""
        if self.kind == "emergency":
            return "Emergency"
        surname = (self.client_name or "").split()
        return f"{self.pet} {surname[-1][0]}." if surname and surname[-1] else self.pet

    @property
    def band(self) -> str:
        if self.promised is None or self.status not in ("waiting", "in_consult", "booked"):
            return "ontime"
        out = "ontime"
        for low, name in BANDS:
            if self.past_min >= low:
                out = name
        return out if self.past_min > 0 else "ontime"


@dataclass(frozen=True, slots=True)
class Block:
    """A vet's blocked time from an imported calendar (staff meeting, lunch)."""

    start: datetime
    end: datetime
    reason: str


@dataclass(slots=True)
class Lane:
    vet: str
    name: str
    short_name: str
    away_until: datetime | None
    away_reason: str | None
    behind_min: int = 0
    behind_reason: str | None = None
    done: list[VisitView] = field(default_factory=list)
    current: list[VisitView] = field(default_factory=list)
    waiting: list[VisitView] = field(default_factory=list)  # in the order the vet will take them
    upcoming: list[VisitView] = field(default_factory=list)
    missed: list[VisitView] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    @property
    def queue(self) -> list[VisitView]:
        """Everyone still to be seen, in predicted order (waiting first, then booked)."""
        return self.waiting + self.upcoming


@dataclass(slots=True)
class Board:
    now: datetime
    tz: tzinfo
    clinic: str
    lanes: list[Lane]
    visits: dict[str, VisitView]
    texts_paused: bool
    day_start: datetime
    day_end: datetime
    settings: dict[str, Any]

    def lane(self, vet: str) -> Lane | None:
        return next((ln for ln in self.lanes if ln.vet == vet), None)

    def place_in_line(self, visit_id: str) -> int | None:
        """1 = next to be seen by that vet; None when not waiting."""
        v = self.visits.get(visit_id)
        lane = self.lane(v.vet) if v else None
        if v is None or lane is None or v not in lane.waiting:
            return None
        return lane.waiting.index(v) + 1


def short_vet_name(name: str) -> str:
    """ "Dr. Ana Ruiz" -> "Dr. Ruiz": how the lobby says it."""
    parts = name.split()
    if len(parts) >= 3 and parts[0].rstrip(".").lower() == "dr":
        return f"{parts[0]} {parts[-1]}"
    return name


async def _promises(q: Tx, ids: list[str]) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """Per visit, the first and the latest range end it was told: at check-in (kiosk or desk),
    then by each text (the notifier's outbox)."""
    first: dict[str, datetime] = {}
    latest: dict[str, datetime] = {}
    if not ids:
        return first, latest
    for vid, t in await q.told_range_ends(ids):
        first.setdefault(vid, t)
        latest[vid] = t
    return first, latest


async def load_board(rt: ClinicRuntime, now: datetime) -> Board:
    """Everything the pages show about today at `now`."""
    tz = rt.clinic.tz
    day = rt.today(now)
    version = rt.store.version  # read before the state: a write meanwhile makes what follows stale
    state = await rt.day_state(day)
    est = await rt.estimates(now)
    async with rt.store.read() as q:
        vets = await q.vet_names()
        rows = await q.board_visits(day)
        paused = await q.texts_paused()
        in_car = await q.visits_waiting_in_car()
        first_promise, promises = await _promises(q, [r.id for r in rows])
        offered = set(await q.recovery_offers([r.id for r in rows]))
        vet_reasons = await _vet_reasons(q)
        blocked = await q.blocked_times(day, day)
    gesture = rt.clinic.settings.get("recovery_gesture")
    threshold = float(rt.clinic.settings.get("recovery_threshold_min", 20))

    visits: dict[str, VisitView] = {}
    for r in rows:
        v = VisitView(
            id=r.id, kind=r.kind, status=r.status, vet=r.vet, pet=r.pet or "(no name)",
            species=r.species, sex=r.sex, client_id=r.client_id, client_name=r.client,
            mobile=r.mobile, sms_consent=r.sms_consent, notes=r.notes or "",
            type_name=r.type_name, booked_min=r.booked_min, scheduled=r.scheduled,
            arrived=r.arrived, started=r.started, ended=r.ended,
            priority=r.priority, estimate=est.get(r.id), in_car=r.id in in_car,
            texts_paused=r.client_id in paused.clients if r.client_id else False, language=r.language,
        )
        if v.mobile and (kind := line_kind(v.mobile)) is not None:
            v.no_text_kind, v.phone = kind, _dial(v.mobile, rt.clinic.region)
        # A booked client was promised their booked time; a text's range replaces that promise.
        v.promised = promises.get(v.id) or (v.scheduled if v.kind == "appointment" else None)
        past_first = 0.0
        if v.promised is not None and v.status in ("waiting", "in_consult") and v.arrived is not None:
            until = v.started or now
            # Nobody is "kept waiting" for the minutes before they arrived late.
            v.past_min = max(0.0, (until - max(v.promised, v.arrived)).total_seconds() / 60)
            first = first_promise.get(v.id) or v.promised
            past_first = max(0.0, (until - max(first, v.arrived)).total_seconds() / 60)
        # The gesture is owed for breaking the first promise: a later text saying "later
        # still" explains the wait, it does not undo it.
        if gesture and (past_first > threshold or v.id in offered):
            v.recovery, v.recovery_offered = str(gesture), v.id in offered
        visits[v.id] = v

    blocks: dict[str, list[Block]] = {}
    for vet, start, end, reason in blocked:
        blocks.setdefault(vet, []).append(Block(start, end, reason or "busy"))
    # The estimator's dispatch rule orders each queue (one rule: the board never shows a line
    # the estimates disagree with).
    order = await _dispatch_order(rt, version, state, now)
    lanes: list[Lane] = []
    for vet_id in state.vets:
        name = vets.get(vet_id, vet_id)
        away = state.vet_unavailable_until.get(vet_id)
        lane = Lane(vet_id, name, short_vet_name(name), away if away and away > now else None,
                    vet_reasons.get(vet_id), blocks=blocks.get(vet_id, []))
        mine = [v for v in visits.values() if v.vet == vet_id]
        far = now + timedelta(days=1)
        for v in mine:
            if v.status == "done":
                lane.done.append(v)
            elif v.status == "in_consult":
                lane.current.append(v)
            elif v.status == "waiting":
                lane.waiting.append(v)
            elif v.status == "booked":
                lane.upcoming.append(v)
            elif v.status == "noshow":
                lane.missed.append(v)
        rank = {vid: i for i, vid in enumerate(order.get(vet_id, []))}
        # Past the estimator's queue cut (MAX_QUEUE), in booked or arrival order after the rest.
        lane.waiting.sort(key=lambda v: (rank.get(v.id, len(rank)), v.scheduled or v.arrived or far, v.id))
        lane.upcoming.sort(key=lambda v: (rank.get(v.id, len(rank)), v.scheduled or far, v.id))
        _behind(lane, now)
        lanes.append(lane)
    seen = [now]
    for v in visits.values():
        seen += [t for t in (v.scheduled, v.arrived, v.ended, v.estimate.p90 if v.estimate else None) if t]
    # Bounded by the opening hours whatever the data says (server/hours.py): one absurd time
    # once made the timeline a century of hourly marks.
    start_t, end_t = page_span(rt.clinic.settings, day, tz, seen)
    return Board(now, tz, rt.clinic.name, lanes, visits, paused.clinic, start_t, end_t, rt.clinic.settings)


# The last dispatch order per runtime: (store version, time, order). A booked-length pass costs a
# few milliseconds a render; a lobby of readers within one window shares it.
_ORDERS: weakref.WeakKeyDictionary[ClinicRuntime, tuple[int, datetime, dict[str, list[str]]]] = (
    weakref.WeakKeyDictionary())
ORDER_WINDOW_S = 10.0


def order_time(now: datetime) -> datetime:
    """The moment the board's line is ordered at: `now` rounded up to ORDER_WINDOW_S."""
    return now + timedelta(seconds=-now.timestamp() % ORDER_WINDOW_S)


async def _dispatch_order(rt: ClinicRuntime, version: int, state: DayState, now: datetime) -> dict[str, list[str]]:
    """`estimator.dispatch_order` at `now` rounded up to ORDER_WINDOW_S (nothing that already
    happened looks like the future), cached until the store changes. On a worker thread, as the
    estimates are: a day at the cap costs milliseconds a pass (bench/bench_board_order.py)."""
    at = order_time(now)
    cached = _ORDERS.get(rt)
    if cached is not None and cached[0] == version and cached[1] == at:
        return cached[2]
    order = await asyncio.to_thread(dispatch_order, state, at)
    _ORDERS[rt] = (version, at, order)
    return order


def _behind(lane: Lane, now: datetime) -> None:
    """How far behind its schedule a vet runs: the next booked client's predicted start vs booking."""
    nxt = [v for v in lane.queue if v.scheduled is not None and v.estimate is not None]
    nxt.sort(key=lambda v: v.estimate.start if v.estimate else now)
    if nxt and nxt[0].estimate is not None and nxt[0].scheduled is not None:
        behind = (nxt[0].estimate.start - max(nxt[0].scheduled, now)).total_seconds() / 60
        lane.behind_min = max(0, round(min(behind, MAX_BEHIND_MIN)))
    if any(v.kind == "emergency" for v in lane.current + lane.waiting):
        lane.behind_reason = "emergency"
    elif lane.away_until is not None:
        lane.behind_reason = lane.away_reason or "running late"


async def _vet_reasons(q: Tx) -> dict[str, str]:
    """The reason given with each vet's latest "running late" still in force."""
    undone = await q.undone_seqs()
    out: dict[str, str] = {}
    for e in await q.events_since(0, types=("vet_late", "vet_available")):
        if e.seq in undone:
            continue
        if e.type == "vet_available":
            out.pop(e.data["vet"], None)
        elif e.data.get("reason"):
            out[e.data["vet"]] = str(e.data["reason"])
    return out


@dataclass(slots=True)
class LogEntry:
    seq: int
    at: datetime
    type: str
    appointment: str | None
    data: dict[str, Any]
    actor: str
    undone: bool
    undoable: bool


@dataclass(slots=True)
class Alert:
    seq: int
    at: datetime
    type: str
    text: str


async def recent_log(q: Tx, day_start: datetime, limit: int = 12) -> list[LogEntry]:
    """Today's latest events by people (not the demo's or replay's), newest first: reception's,
    the kiosk's and the PMS's, and clients' own reschedules and cancels (with the pet's name)."""
    from server.events import UNDOABLE

    undone = await q.undone_seqs()
    return [LogEntry(e.seq, e.at, e.type, e.appointment, e.data, e.actor, e.seq in undone,
                     e.type in UNDOABLE and e.seq not in undone)
            for e in await q.events_by_people(day_start, CLIENTS_OWN, limit)]


async def open_alerts(q: Tx, since: datetime, tz: tzinfo = UTC) -> list[Alert]:
    """Kiosk urgent-help presses, unmatched check-ins, and clients who moved or cancelled a visit
    they had already checked in for (they may still be in the lobby), nobody has acknowledged yet."""
    undone = await q.undone_seqs()
    acked = set()
    for e in await q.events_since(0, types=("ack",)):
        if e.seq not in undone:
            seq = e.data.get("seq")
            if seq is not None:
                acked.add(int(seq))
    out = []
    for e in await q.events_at_or_after(since, ALERT_TYPES):
        if e.seq in acked:
            continue
        data, at = e.data, e.at
        if e.type in MOVED_AWAY and data.get("from_status") != "waiting":
            continue  # moved before arriving: nobody is in the lobby for it
        if e.type == "urgent":
            # Which kiosk (its token's name) and when: the desk must know where to run.
            note = data.get("note") if data.get("note") not in (None, "", "kiosk button") else None
            kiosk = str(e.actor or '').removeprefix('token:') or 'unknown'
            text = f"URGENT HELP requested at kiosk {kiosk} at {formats.clock(at, tz)}"
            text += f": {note}" if note else ""
        elif e.type in MOVED_AWAY:
            did = "moved their visit to another time" if e.type == "reschedule" else "cancelled their visit"
            text = (f"{data.get('pet') or 'A client'}'s owner had checked in, then {did} by text link: "
                    "they may still be in the lobby")
        else:
            text = f"A client could not check in at the kiosk (phone ending {data.get('phone_last4', '????')})"
        out.append(Alert(e.seq, at, e.type, text))
    return out


async def inbox(q: Tx) -> list[dict[str, Any]]:
    """Client replies that need a person, and reschedule requests, from the notifier's inbound
    table; oldest first, until reception marks them done."""
    # An MMS reply's pictures, as links: http(s) only (they came in a signed webhook, but a
    # link in a staff page must never be a script).
    return [{"id": m.id, "from_number": m.from_number, "body": m.body, "kind": m.kind, "visit_id": m.visit_id,
             "received": m.received, "client": m.client, "pet": m.pet,
             "media": [{"url": url, "type": kind} for url, kind in m.media if url.startswith(("https://", "http://"))]}
            for m in await q.inbox_messages()]


# What the text service's refusal means, in words for the desk (Twilio's error codes, and the
# notifier's own "expired").
FAILED_REASONS = {
    "21211": "The number is not a valid phone number.",
    "21614": "The number is not a mobile: it cannot receive texts.",
    "21610": "The client's phone has blocked texts from the clinic (they replied STOP).",
    "30003": "The client's phone was off or out of reach, and the carrier gave up.",
    "30005": "The carrier does not know the number: it may be out of service.",
    "30006": "The number is a landline or cannot receive texts.",
    "30007": "The carrier filtered the text as spam.",
    "expired": "Not sent: the text service could not be reached before the news in it went out of date.",
}
HELD_REASON = "May or may not have reached the client — the text service could not confirm."


@dataclass(slots=True)
class TextForReception:
    """A text the notifier could not settle alone: `held` (unknown if sent) or `failed`."""

    id: int
    status: str
    kind: str
    to_number: str
    number: str  # as the desk dials it
    body: str
    reason: str  # what happened, in plain words
    detail: str | None  # the service's own words, for whoever calls its support
    written: datetime
    at: datetime  # when it was held or failed
    visit_id: str | None
    pet: str | None
    client: str | None
    vet: str | None
    scheduled: datetime | None
    can_resend: bool  # not to a number that opted out: the worker would refuse it
    never_sent: bool = False  # held back before any try (an implausible delay): "send it anyway", not "again"


def _dial(number: str, region: str) -> str:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return number
    fmt = (phonenumbers.PhoneNumberFormat.NATIONAL if phonenumbers.region_code_for_number(parsed) == region
           else phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return str(phonenumbers.format_number(parsed, fmt))


def _failed_reason(code: str | None, message: str | None, opted_out: bool) -> tuple[str, str | None]:
    detail = " ".join(x for x in (f"Code {code}:" if code else None, message) if x) or None
    if code in FAILED_REASONS:
        reason = FAILED_REASONS[code]
    elif message and message.startswith("gave up after"):
        reason = "Not sent: the text service kept turning it away, and the notifier gave up."
    elif message:
        reason = "The text service refused it."
    else:
        reason = "The text service reported that it could not deliver it."
    if opted_out and code != "21610":
        reason += " The client has since opted out of texts."
    return reason, detail


async def texts_for_reception(q: Tx, region: str, *, since: datetime | None = None,
                              row_id: int | None = None) -> list[TextForReception]:
    """Texts that need a person (written since `since`, or just row `row_id`), oldest first:
    held ones, and failed ones nobody has settled. Not listed: what reception dropped or
    dismissed, texts to a number that opted out before they went, and a console text
    reception itself cancelled (undo)."""
    out = []
    # An undone console text (server/events.py) is failed with this message: reception's own choice.
    for r in await q.unsettled_texts(since, row_id, SETTLED_CODES, "cancelled by reception"):
        if r.status == "held" and r.error_code == HELD_IMPLAUSIBLE:
            reason, detail = str(r.error_message), None  # never sent: the server held it back
        elif r.status == "held":
            reason, detail = HELD_REASON, r.error_message
        else:
            reason, detail = _failed_reason(r.error_code, r.error_message, r.opted_out)
        out.append(TextForReception(
            id=r.id, status=r.status, kind=r.kind, to_number=r.to_number,
            number=_dial(r.to_number, region), body=r.body, reason=reason, detail=detail, written=r.written,
            at=r.at, visit_id=r.visit_id, pet=r.pet, client=r.client,
            vet=short_vet_name(r.vet) if r.vet else None, scheduled=r.scheduled,
            can_resend=not r.opted_out, never_sent=r.status == "held" and r.error_code == HELD_IMPLAUSIBLE))
    return out
