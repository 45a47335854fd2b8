"""Who gets a delay text, and when: pure code.

Plain data in (what a text needs to know about each pending visit, what was already sent,
the time), decisions out. No I/O, no clock reads: the server calls `decide` inside the
transaction of the event that moved the estimates and queues the decisions in the outbox
in that same transaction, so a decision and its cause commit together.

How "likely late" is read from an estimate: the estimator gives a median `start` and an
80% range `p10`..`p90`. We text when a point between the optimistic end and the median
(`trigger_point`) is `threshold_min - trigger_slack_min` or more past the booked time (more
when the booked time is further off). The median alone texts too
many clients who end up on time; the optimistic end alone texts too few before their
booked time. The weights are tuned with the replay scorer (see README, "Texts").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from typing import Literal

TextKind = Literal["delay", "later", "earlier"]
Reason = Literal["emergency", "running_late", "overrun"]

# The widest window a clinic may text in, client local time. A clinic may narrow it,
# never widen it: texting at night about a vet visit is worse than not texting.
EARLIEST = time(8, 0)
LATEST = time(21, 0)


class PolicyError(ValueError):
    """Settings that would break a promise the policy makes (e.g. wider quiet hours)."""


@dataclass(frozen=True, slots=True)
class PolicySettings:
    # A client is "delayed" once their consult is likely to start this late (clinic setting).
    threshold_min: float = 20.0
    # Where "likely" sits in the estimate's range: 0 = the optimistic end (p10),
    # 1 = the median. Tuned in replay (README, "Texts"); 0.42 since the range's start is
    # calibrated on the clinic's own days (it moved later: the same point sits lower in it).
    trigger_weight: float = 0.42
    # Text when that point is `threshold_min - trigger_slack_min` or more past the booked
    # time: the estimator's range is narrower than what later walk-ins and emergencies do
    # to a day, and a text after the booked time can no longer let the client come later.
    trigger_slack_min: float = 8.0
    # Further ahead the day has more time to recover (no-shows, short visits): ask for
    # this many more minutes of lateness per minute of lead beyond `lead_free_min`.
    lead_slope: float = 0.4
    lead_free_min: float = 10.0
    # Clients not yet arrived are texted at most this long before their booked time:
    # estimates for the afternoon made in the morning are guesses.
    horizon_min: float = 120.0
    # Text again when the median passes the top of the range told by this much
    # (hysteresis: a minute's drift past it is not news)...
    later_margin_min: float = 5.0
    # ...or (not yet arrived) when the pessimistic end falls this far below the range told.
    earlier_margin_min: float = 10.0
    max_per_day: int = 3
    quiet_start: time = EARLIEST
    quiet_end: time = LATEST
    # False only for the replay, whose protocol declares every client in daytime (its
    # simulated days run from 07:45 to past 21:00). Never for real clients.
    enforce_hours: bool = True

    def __post_init__(self) -> None:
        if self.quiet_start < EARLIEST or self.quiet_end > LATEST or self.quiet_start >= self.quiet_end:
            raise PolicyError(
                f"texting hours {self.quiet_start:%H:%M}-{self.quiet_end:%H:%M} must lie within "
                f"{EARLIEST:%H:%M}-{LATEST:%H:%M}"
            )
        if not 1 <= self.max_per_day <= 3:
            raise PolicyError("max_per_day must be 1, 2 or 3")
        if self.threshold_min <= 0:
            raise PolicyError("threshold_min must be positive")


@dataclass(frozen=True, slots=True)
class TextCandidate:
    """One pending visit, as much as a text needs to know about it."""

    visit_id: str
    kind: str  # "appointment" | "walkin" | "emergency" (emergencies are never texted)
    pet_name: str | None
    pet_sex: str | None  # "female" | "male" | "unknown" | None
    vet_name: str
    scheduled: datetime | None  # None for walk-ins
    arrived: datetime | None  # None: not checked in yet
    start: datetime
    p10: datetime
    p90: datetime
    to_number: str | None  # E.164; None: cannot be texted
    language: str = "en"
    consent: bool = False
    opted_out: bool = False
    tz: tzinfo = UTC  # the client's (in practice the clinic's) zone, for quiet hours
    reason: Reason | None = None
    # The range the kiosk showed at check-in, if the server kept it: a later text is owed
    # when that promise no longer holds, just as for a text.
    kiosk_p10: datetime | None = None
    kiosk_p90: datetime | None = None
    # "Dr." / "Dra." (import or console): Spanish texts say "la Dra. Ana Ruiz".
    vet_title: str | None = None
    # False for a number known to take no texts (a landline, a toll-free line): a text would
    # only fail at the provider, so none is queued; reception sees the number in the console.
    textable: bool = True


@dataclass(frozen=True, slots=True)
class SentText:
    """A delay text already queued for a visit: what it told.

    `reached` is False for one that never went out (it went stale while the provider was
    down): the client was not told, so it neither counts as telling them nor towards the day's
    cap. It still takes its sequence number."""

    at: datetime
    start: datetime
    p10: datetime
    p90: datetime
    kind: TextKind = "delay"
    reached: bool = True


@dataclass(frozen=True, slots=True)
class TextDecision:
    """Send this text. `dedupe_key` is unique per visit and sequence number."""

    candidate: TextCandidate
    kind: TextKind
    seq: int  # 1 for the first text to this visit today
    at: datetime
    day: date  # client-local date the per-day cap counts against
    dedupe_key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dedupe_key", f"delay:{self.candidate.visit_id}:{self.seq}")

    @property
    def visit_id(self) -> str:
        return self.candidate.visit_id


def _minutes(a: datetime, b: datetime) -> float:
    return (a - b).total_seconds() / 60.0


def within_hours(now: datetime, tz: tzinfo, settings: PolicySettings) -> bool:
    local = now.astimezone(tz).time()
    return settings.quiet_start <= local < settings.quiet_end


def trigger_point(c: TextCandidate, settings: PolicySettings) -> datetime:
    """The start we act on: between the optimistic end (weight 0) and the median (1)."""
    return c.p10 + (c.start - c.p10) * settings.trigger_weight


def _late_enough(c: TextCandidate, now: datetime, settings: PolicySettings) -> bool:
    if c.scheduled is None:
        return False
    lead = _minutes(c.scheduled, now)
    if c.arrived is None and lead > settings.horizon_min:
        return False
    need = settings.threshold_min - settings.trigger_slack_min
    need += settings.lead_slope * max(0.0, lead - settings.lead_free_min)
    return _minutes(trigger_point(c, settings), c.scheduled) >= need


def _told(c: TextCandidate, sent: Sequence[SentText]) -> tuple[datetime, datetime] | None:
    if sent:
        last = max(sent, key=lambda s: s.at)
        return last.p10, last.p90
    if c.kiosk_p90 is not None and c.kiosk_p10 is not None:
        return c.kiosk_p10, c.kiosk_p90
    return None


def decide_one(
    c: TextCandidate, now: datetime, settings: PolicySettings, sent: Sequence[SentText]
) -> TextDecision | None:
    """The text owed to one visit now, if any (see `decide`)."""
    if c.kind == "emergency" or not c.consent or c.opted_out or not c.to_number or not c.textable:
        return None
    if settings.enforce_hours and not within_hours(now, c.tz, settings):
        return None
    day = now.astimezone(c.tz).date()
    today = [s for s in sent if s.reached and s.at.astimezone(c.tz).date() == day]
    if len(today) >= settings.max_per_day:
        return None
    seq = len(sent) + 1

    def make(kind: TextKind) -> TextDecision:
        return TextDecision(candidate=c, kind=kind, seq=seq, at=now, day=day)

    if not today:
        # First text: the visit is likely late enough, or (walk-ins, and anyone the kiosk
        # gave a range to) the range they were shown no longer holds.
        if _late_enough(c, now, settings):
            return make("delay")
        told = _told(c, today)
        if c.arrived is not None and told is not None and _past_range(c, told[1], settings):
            # Even a client not yet late by the clinic's threshold is owed the truth when
            # the range shown at check-in no longer holds; walk-ins have no booked time.
            if c.scheduled is None or _minutes(trigger_point(c, settings), c.scheduled) >= 10:
                return make("delay")
        return None
    told = _told(c, today)
    assert told is not None
    if _past_range(c, told[1], settings):
        return make("later")
    if c.arrived is None and _minutes(told[0], c.p90) >= settings.earlier_margin_min:
        # They were told they could come later; now they should come sooner.
        return make("earlier")
    return None


def _past_range(c: TextCandidate, told_p90: datetime, settings: PolicySettings) -> bool:
    return _minutes(c.start, told_p90) > settings.later_margin_min


def decide(
    candidates: Sequence[TextCandidate],
    now: datetime,
    settings: PolicySettings,
    sent: Mapping[str, Sequence[SentText]],
) -> list[TextDecision]:
    """Texts owed now, one at most per visit.

    `candidates`: every pending visit of the day with its current estimate. `sent`: the
    delay texts already queued per visit (from `outbox.sent_texts`). Texts: waiting clients
    and clients not yet arrived (within `horizon_min` of their booked time) whose consult is
    likely to start `threshold_min`+ past their booked time (see `_late_enough`); again only when the told range
    no longer holds (median past its top: "later"; not yet arrived and the whole range
    now well before it: "earlier"); at most `max_per_day` per visit; only inside the
    texting hours in the client's zone; never without consent, after an opt-out, or to a number
    known to take no texts (`textable`).
    """
    out: list[TextDecision] = []
    for c in candidates:
        d = decide_one(c, now, settings, sent.get(c.visit_id, ()))
        if d is not None:
            out.append(d)
    return out


def by_number(decisions: Sequence[TextDecision]) -> list[list[TextDecision]]:
    """The decisions of one round, one group per phone number (first-decided order kept).

    A household shares a phone: Max and Bella's owner gets one text naming both, not two in
    the same second. Each visit keeps its own decision (kind, sequence, range told), so the
    policy's per-visit bookkeeping is unchanged; only the words are shared."""
    groups: dict[str, list[TextDecision]] = {}
    for d in decisions:
        groups.setdefault(d.candidate.to_number or f"\0{d.visit_id}", []).append(d)
    return list(groups.values())


def as_sent(d: TextDecision) -> SentText:
    """What a decision told, for keeping `sent` in memory (the replay texter)."""
    return SentText(at=d.at, start=d.candidate.start, p10=d.candidate.p10, p90=d.candidate.p90, kind=d.kind)


def sent_since(sent: Sequence[SentText], since: datetime) -> list[SentText]:
    return [s for s in sent if s.at >= since]


def minutes_late(c: TextCandidate) -> tuple[int, int] | None:
    """The honest range told, in whole 5 minutes past the booked time (low >= 0)."""
    if c.scheduled is None:
        return None
    low = max(0, int(_minutes(c.p10, c.scheduled) // 5) * 5)
    high = max(low + 5, -int(-_minutes(c.p90, c.scheduled) // 5) * 5)
    return low, high

