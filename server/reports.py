"""The practice manager's reports (issue 17): pure functions over what the store reads.

    period = make_period("month", date(2026, 3, 1))
    data = await load_report_data(tx, period, vet=None, tz=clinic.tz)   # the store's read operations
    report = build_report(data, period, settings=clinic.settings)       # pure: no I/O, no clock

Every figure is in minutes. The definitions (docs/REPORTS.md says the same for the manager):

- **Wait** (check-in -> start): from the client's check-in (or walk-in) to the consult's start.
  **Late** (booked -> start): from the booked time to the start; negative when seen early.
  Medians and P90s interpolate between ranks (numpy's default percentile).
- **Why the day ran late**: the minutes each booked client started after their booked time,
  split by cause (`attribute_delays`). Each vet's day is walked in start order keeping a
  *backlog*: the minutes that pushed the lane since it was last on time, by cause:
  an emergency's whole consult, a walk-in's whole consult, a booked consult's overrun past its
  booked length, the vet's idle time inside a "running late / away" period, and the time a
  late client kept the vet waiting. A client who starts late is first charged with their own
  late arrival (up to their lateness); the rest is split over the backlog in proportion;
  what the backlog cannot explain is "other". A consult shorter than booked pays the backlog
  back; a client seen on time empties it.
- **Service defect**: a client who started after the end of the range they were last told
  (at check-in or by text, whichever came last before the start), or, never told a range,
  more than `defect_untold_min` minutes (clinic setting, default 15) past their booked time.
- **Late arrival**: checked in more than `late_arrival_min` (setting, default 5) minutes
  after the booked time. **No-show**: marked no-show.
- **Estimate accuracy**: the range told at check-in against the real start: mean absolute
  error of its point estimate, and the share who started inside it; beside it the replay
  scorer's "booked" baseline: a per-vet queue at check-in time in which every consult lasts
  its booked length and every client comes on time.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from server.errors import BadRequest

if TYPE_CHECKING:
    from server.store.interface import LoggedEvent
    from server.store.reports import ReportOps, ReportRecovery, ReportReply, ReportText, ReportVisit, ToldRange

PERIODS = ("day", "week", "month", "year", "custom")
MAX_DAYS = 400  # a custom range longer than this is refused: every report stays bounded
CAUSES = ("emergency", "overrun", "vet late/away", "walk-in", "late arrival", "other")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
LOG_TYPES = ("vet_late", "vet_available", "reschedule", "cancel_visit", "undo")
NOTE_MAX = 500


@dataclass(frozen=True, slots=True)
class Period:
    kind: str
    first: date
    last: date  # included

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def label(self) -> str:
        if self.kind == "day":
            return self.first.strftime("%a %d %b %Y")
        if self.kind == "month":
            return self.first.strftime("%B %Y")
        if self.kind == "year":
            return str(self.first.year)
        return f"{self.first:%d %b %Y} - {self.last:%d %b %Y}"

    def bounds(self, tz: tzinfo) -> tuple[datetime, datetime]:
        """The period as UTC instants, the end excluded."""
        start = datetime.combine(self.first, time(0), tz).astimezone(UTC)
        end = datetime.combine(self.last + timedelta(days=1), time(0), tz).astimezone(UTC)
        return start, end

    def shifted(self, step: int) -> Period:
        """The period before (-1) or after (+1) this one, of the same kind."""
        if self.kind == "month":
            m = self.first.month - 1 + step
            return make_period("month", date(self.first.year + m // 12, m % 12 + 1, 1))
        if self.kind == "year":
            return make_period("year", date(self.first.year + step, 1, 1))
        n = self.days
        return Period(self.kind, self.first + timedelta(days=n * step), self.last + timedelta(days=n * step))


def make_period(kind: str, anchor: date, last: date | None = None) -> Period:
    """The day, week (Monday to Sunday), month or year holding `anchor`, or `anchor`..`last`."""
    if kind == "day":
        return Period(kind, anchor, anchor)
    if kind == "week":
        first = anchor - timedelta(days=anchor.weekday())
        return Period(kind, first, first + timedelta(days=6))
    if kind == "month":
        first = anchor.replace(day=1)
        nxt = (first + timedelta(days=32)).replace(day=1)
        return Period(kind, first, nxt - timedelta(days=1))
    if kind == "year":
        return Period(kind, date(anchor.year, 1, 1), date(anchor.year, 12, 31))
    if kind == "custom":
        if last is None:
            raise BadRequest("to: a custom period needs an end date", "to")
        if last < anchor:
            raise BadRequest("to: the end is before the start", "to")
        if (last - anchor).days + 1 > MAX_DAYS:
            raise BadRequest(f"to: at most {MAX_DAYS} days in one report", "to")
        return Period(kind, anchor, last)
    raise BadRequest(f"period: expected one of {', '.join(PERIODS)}", "period")


# -- reading ------------------------------------------------------------------------------------


@dataclass(slots=True)
class ReportData:
    """Everything the reports read for one period: see `load_report_data`."""

    tz: tzinfo
    visits: list[ReportVisit]
    told: list[ToldRange]
    texts: list[ReportText]
    replies: list[ReportReply]
    opt_outs: int
    log: list[LoggedEvent]
    recoveries: list[ReportRecovery]


async def load_report_data(q: ReportOps, period: Period, vet: str | None, tz: tzinfo) -> ReportData:
    """The period's visits, ranges told, texts, replies, opt-outs, log entries and recoveries."""
    since, until = period.bounds(tz)
    return ReportData(
        tz=tz,
        visits=await q.report_visits(period.first, period.last, vet),
        told=await q.report_told(period.first, period.last),
        texts=await q.report_texts(since, until),
        replies=await q.report_replies(since, until),
        opt_outs=await q.report_opt_outs(since, until),
        log=await q.report_events(since, until, LOG_TYPES) + await q.report_notes(period.first, period.last),
        recoveries=await q.report_recoveries(period.first, period.last),
    )


# -- numbers ------------------------------------------------------------------------------------


def minutes(a: datetime, b: datetime) -> float:
    """b - a in minutes."""
    return (b - a).total_seconds() / 60


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), interpolating between ranks as numpy does; None when empty."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


@dataclass(slots=True)
class Table:
    """One report table: what the page shows, the CSV holds and the JSON lists."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]


@dataclass(slots=True)
class Report:
    period: Period
    vet: str | None
    tables: dict[str, Table]
    # Series for the plots: plain numbers, drawn by server/report_plots.py.
    heat: dict[tuple[int, int], float] = field(default_factory=dict)  # (weekday, hour) -> median min late
    heat_n: dict[tuple[int, int], int] = field(default_factory=dict)
    readings: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Defect:
    visit: ReportVisit
    told: ToldRange | None
    past_min: float
    cause: str
    texted: datetime | None
    text_kind: str | None
    recovery: str | None
    note: str | None


def _local(t: datetime, tz: tzinfo) -> datetime:
    return t.astimezone(tz)


def _vet_late_intervals(log: Iterable[LoggedEvent]) -> dict[str, list[tuple[datetime, datetime]]]:
    """Each vet's "running late / away" periods, from vet_late events (cut short by vet_available);
    undone events are left out."""
    undone = {int(e.data["seq"]) for e in log if e.type == "undo" and isinstance(e.data.get("seq"), int)}
    out: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for e in log:
        if e.seq in undone:
            continue
        vet = e.data.get("vet")
        if not isinstance(vet, str):
            continue
        if e.type == "vet_late" and isinstance(e.data.get("until"), str):
            try:
                until = datetime.fromisoformat(e.data["until"])
            except ValueError:
                continue
            if until > e.at:
                out[vet].append((e.at, until))
        elif e.type == "vet_available" and out[vet]:
            start, until = out[vet][-1]
            if start <= e.at < until:
                out[vet][-1] = (start, e.at)
    return out


def _overlap(a0: datetime, a1: datetime, spans: list[tuple[datetime, datetime]]) -> float:
    total = 0.0
    for s0, s1 in spans:
        lo, hi = max(a0, s0), min(a1, s1)
        if hi > lo:
            total += minutes(lo, hi)
    return total


def attribute_delays(visits: list[ReportVisit], away: dict[str, list[tuple[datetime, datetime]]]
                     ) -> dict[str, dict[str, float]]:
    """Minutes each booked client started after their booked time, by cause (see the module's
    docstring); only visits that started late are in the answer."""
    lanes: dict[tuple[str, date], list[ReportVisit]] = defaultdict(list)
    for v in visits:
        if v.started is not None and v.status != "cancelled":
            lanes[(v.vet, v.day)].append(v)
    out: dict[str, dict[str, float]] = {}
    for (vet, _day), lane in lanes.items():
        lane.sort(key=lambda v: (v.started, v.id))
        spans = away.get(vet, [])
        backlog: dict[str, float] = defaultdict(float)
        opened = min((v.scheduled for v in lane if v.scheduled is not None), default=None)
        prev_end: datetime | None = None
        for v in lane:
            assert v.started is not None
            gap_from = prev_end if prev_end is not None else opened
            if spans and gap_from is not None and gap_from < v.started:
                if (idle := _overlap(gap_from, v.started, spans)) > 0:
                    backlog["vet late/away"] += idle
            length = minutes(v.started, v.ended) if v.ended is not None else v.booked_min
            if v.kind == "appointment" and v.scheduled is not None:
                late = minutes(v.scheduled, v.started)
                came_late = minutes(v.scheduled, v.arrived) if v.arrived is not None else 0.0
                if late <= 0.5:
                    backlog.clear()
                else:
                    alloc: dict[str, float] = defaultdict(float)
                    own = min(late, max(0.0, came_late))
                    if own > 0:
                        alloc["late arrival"] += own
                    rest = late - own
                    total = sum(backlog.values())
                    if rest > 0 and total > 0:
                        scale = min(1.0, rest / total)
                        for cause, m in backlog.items():
                            alloc[cause] += m * scale
                    if rest - min(rest, total) > 0.05:
                        alloc["other"] += rest - min(rest, total)
                    out[v.id] = dict(alloc)
                # A late client keeps the vet waiting from when the vet was free (or the booked time).
                if came_late > 0 and v.arrived is not None:
                    free_from = max(v.scheduled, prev_end) if prev_end is not None else v.scheduled
                    if (kept := minutes(free_from, min(v.arrived, v.started))) > 0:
                        backlog["late arrival"] += kept
                over = length - v.booked_min
                if over > 0:
                    backlog["overrun"] += over
                elif over < 0 and (total := sum(backlog.values())) > 0:
                    keep = max(0.0, total + over) / total
                    for cause in list(backlog):
                        backlog[cause] *= keep
            elif v.kind == "emergency":
                backlog["emergency"] += max(0.0, length)
            elif v.kind == "walkin":
                backlog["walk-in"] += max(0.0, length)
            end = v.ended or v.started + timedelta(minutes=v.booked_min)
            prev_end = end if prev_end is None else max(prev_end, end)
    return out


def _baseline_starts(visits: list[ReportVisit]) -> dict[str, datetime]:
    """The replay scorer's "booked" baseline at each client's check-in: a per-vet queue in which
    every consult lasts its booked length and every booked client comes on time."""
    lanes: dict[tuple[str, date], list[ReportVisit]] = defaultdict(list)
    for v in visits:
        if v.status != "cancelled":
            lanes[(v.vet, v.day)].append(v)
    out: dict[str, datetime] = {}
    for lane in lanes.values():
        def order(v: ReportVisit) -> datetime:
            t = v.scheduled or v.arrived or v.started
            assert t is not None
            return t
        lane = [v for v in lane if (v.scheduled or v.arrived or v.started) is not None]
        lane.sort(key=order)
        for i, x in enumerate(lane):
            t = x.arrived
            if t is None or x.started is None or x.kind == "emergency":
                continue  # an emergency is seen at once: nobody is told a time
            free = t
            for y in lane:
                if y.started is not None and y.started <= t and (y.ended is None or y.ended > t):
                    free = max(free, y.started + timedelta(minutes=y.booked_min))
            for y in lane[:i]:  # ahead of x in booked (or arrival) order
                if y.started is not None and y.started <= t:
                    continue
                if y.kind != "appointment" and (y.arrived is None or y.arrived > t):
                    continue  # a walk-in or emergency not yet there is not known at t
                free = max(free, y.scheduled or t) + timedelta(minutes=y.booked_min)
            out[x.id] = max(free, x.scheduled or t, t)
    return out


def _group_key(p: Period, d: date) -> str:
    """Per day, or per ISO week when the period is longer than two months (a readable chart)."""
    return _group_of(p.days > 62, d)


@functools.lru_cache(maxsize=1024)
def _group_of(weekly: bool, d: date) -> str:
    if weekly:
        monday = d - timedelta(days=d.weekday())
        return f"week of {monday.isoformat()}"
    return d.isoformat()


def build_report(data: ReportData, period: Period, *, vet: str | None = None,
                 settings: dict[str, Any] | None = None) -> Report:
    """Every report table and plot series of the period (pure: no I/O, no clock)."""
    settings = settings or {}
    tz = data.tz
    untold_min = float(settings.get("defect_untold_min", 15))
    late_min = float(settings.get("late_arrival_min", 5))
    visits = [v for v in data.visits if v.status != "cancelled"]
    ids = {v.id for v in visits}
    started = [v for v in visits if v.started is not None]
    tables: dict[str, Table] = {}
    readings: dict[str, str] = {}
    rep = Report(period, vet, tables, readings=readings)

    # -- waits ---------------------------------------------------------------------------------
    def wait_row(label: Any, group: list[ReportVisit]) -> list[Any]:
        waits = [minutes(v.arrived, v.started) for v in group if v.arrived is not None and v.started is not None]
        lates = [minutes(v.scheduled, v.started) for v in group
                 if v.kind == "appointment" and v.scheduled is not None and v.started is not None]
        return [label, len(group), _r(percentile(waits, 50)), _r(percentile(waits, 90)),
                _r(percentile(lates, 50)), _r(percentile(lates, 90))]

    wait_cols = ["visits seen", "wait median (min)", "wait P90 (min)", "late median (min)", "late P90 (min)"]
    by_vet: dict[str, list[ReportVisit]] = defaultdict(list)
    for v in started:
        by_vet[v.vet_name].append(v)
    tables["waits_by_vet"] = Table(
        "waits_by_vet", "Waits by vet", ["vet", *wait_cols],
        [wait_row(name, g) for name, g in sorted(by_vet.items())]
        + ([wait_row("All vets", started)] if started else []),
        "Wait: check-in to consult start. Late: booked time to consult start (negative: seen early).")
    by_hour: dict[int, list[ReportVisit]] = defaultdict(list)
    for v in started:
        when = v.scheduled or v.arrived or v.started
        assert when is not None
        by_hour[_local(when, tz).hour].append(v)
    tables["waits_by_hour"] = Table(
        "waits_by_hour", "Waits by hour of the day", ["hour", *wait_cols],
        [wait_row(f"{h:02d}:00", by_hour[h]) for h in sorted(by_hour)],
        "Hour of the booked time (walk-ins: of their arrival), clinic time.")
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    for v in started:
        if v.kind == "appointment" and v.scheduled is not None and v.started is not None:
            loc = _local(v.scheduled, tz)
            cells[(loc.weekday(), loc.hour)].append(minutes(v.scheduled, v.started))
    rep.heat = {k: float(percentile(c, 50) or 0.0) for k, c in cells.items()}
    rep.heat_n = {k: len(c) for k, c in cells.items()}
    tables["late_by_weekday_hour"] = Table(
        "late_by_weekday_hour", "How late by weekday and hour", ["weekday", "hour", "visits", "late median (min)"],
        [[WEEKDAYS[d], f"{h:02d}:00", rep.heat_n[(d, h)], _r(rep.heat[(d, h)])] for d, h in sorted(cells)])
    solid = {k: m for k, m in rep.heat.items() if rep.heat_n[k] >= 3}
    if solid:
        (d, h), m = max(solid.items(), key=lambda kv: kv[1])
        hour = f"{h % 12 or 12} {'am' if h < 12 else 'pm'}"
        readings["heatmap"] = (f"{DAY_NAMES[d]}s at {hour} run latest: a median {m:.0f} min past the booked time "
                               f"({rep.heat_n[(d, h)]} visits).")
    if by_hour:
        def median_wait(kv: tuple[int, list[ReportVisit]]) -> float:
            return percentile([minutes(v.arrived, v.started) for v in kv[1] if v.arrived and v.started], 50) or -1e9

        h, hour_visits = max(by_hour.items(), key=median_wait)
        row = wait_row(h, hour_visits)
        if row[2] is not None:
            readings["waits"] = (f"Waits are longest for {h % 12 or 12} {'am' if h < 12 else 'pm'} bookings: "
                                 f"median {row[2]:.0f} min, P90 {row[3]:.0f} min from check-in to start.")

    # -- why the day ran late ------------------------------------------------------------------
    away = _vet_late_intervals(data.log)
    alloc = attribute_delays(visits, away)
    by_group: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for v in visits:
        if v.id in alloc:
            for cause, m in alloc[v.id].items():
                by_group[_group_key(period, v.day)][cause] += m
    delay_rows: list[list[Any]] = []
    for g in sorted(by_group):
        parts = by_group[g]
        delay_rows.append([g, *[round(parts.get(c, 0.0)) for c in CAUSES], round(sum(parts.values()))])
    tables["delay_by_cause"] = Table(
        "delay_by_cause", "Why the day ran late", ["day" if period.days <= 62 else "week",
                                                   *[f"{c} (min)" for c in CAUSES], "total (min)"],
        delay_rows, "Minutes booked clients started after their booked time, split by what pushed the vet's "
                    "lane (docs/REPORTS.md: how it is attributed).")
    totals = {c: sum(p.get(c, 0.0) for p in by_group.values()) for c in CAUSES}
    grand = sum(totals.values())
    if grand >= 1:
        top = max(totals, key=lambda c: totals[c])
        worst = max(delay_rows, key=lambda r: r[-1])
        readings["delay"] = (f"{top.capitalize()} caused {100 * totals[top] / grand:.0f}% of {grand:,.0f} "
                             f"client-minutes of delay; the worst {'day' if period.days <= 62 else 'week'} was "
                             f"{worst[0]} "
                             f"({worst[-1]:,} min).")

    # -- service defects -----------------------------------------------------------------------
    told_by: dict[str, list[ToldRange]] = defaultdict(list)
    for tr in data.told:
        if tr.visit_id in ids:
            told_by[tr.visit_id].append(tr)
    texts_by: dict[str, list[ReportText]] = defaultdict(list)
    for x in data.texts:
        if x.visit_id is not None and x.status != "failed":
            texts_by[x.visit_id].append(x)
    recovered = {r.visit_id: r for r in data.recoveries}
    notes: dict[str, str] = {}
    undone = {int(e.data["seq"]) for e in data.log if e.type == "undo" and isinstance(e.data.get("seq"), int)}
    for e in data.log:
        if e.type == "report_note" and e.appointment and e.seq not in undone:
            notes[e.appointment] = f"{e.data.get('note', '')} ({e.actor.removeprefix('user:')})"
    defects: list[Defect] = []
    for v in started:
        assert v.started is not None
        before = [t for t in told_by.get(v.id, []) if t.at <= v.started]
        last = before[-1] if before else None
        if last is not None:
            past = minutes(last.p90, v.started)
            if past < 1:
                continue
        elif v.kind == "appointment" and v.scheduled is not None:
            past = minutes(v.scheduled, v.started)
            if past <= untold_min:
                continue
        else:
            continue
        parts = alloc.get(v.id, {})
        cause = max(parts, key=lambda c: parts[c]) if parts else "other"
        sent = [x for x in texts_by.get(v.id, []) if x.created_at <= v.started]
        by_text = [t for t in before if t.source == "text"]
        texted = max([x.created_at for x in sent] + [t.at for t in by_text], default=None)
        kind = sent[-1].kind if sent else ("delay" if by_text else None)
        r = recovered.get(v.id)
        defects.append(Defect(v, last, past, cause, texted, kind, r.gesture if r else None, notes.get(v.id)))
    defects.sort(key=lambda d: (d.visit.day, d.visit.started))

    def hm(t: datetime | None) -> str:
        return "" if t is None else _local(t, tz).strftime("%H:%M")

    tables["defects"] = Table(
        "defects", "Service-defect log", ["visit", "day", "booked", "pet", "client", "vet", "told until", "started",
                                          "min past", "cause", "texted", "recovery", "note"],
        [[d.visit.id, d.visit.day.isoformat(), hm(d.visit.scheduled), d.visit.pet or "", d.visit.client or "",
          d.visit.vet_name, hm(d.told.p90) if d.told else f"never told (>{untold_min:.0f} min)",
          hm(d.visit.started), round(d.past_min), d.cause,
          f"{hm(d.texted)} {d.text_kind or ''}".strip() if d.texted else "no", d.recovery or "", d.note or ""]
         for d in defects],
        "Every client who started after the end of the range last told to them (or, never told one, more than "
        f"{untold_min:.0f} min past their booked time: setting defect_untold_min).")
    if started:
        share = 100 * len(defects) / len(started)
        texted_n = sum(1 for d in defects if d.texted)
        readings["defects"] = (f"{len(defects)} of {len(started)} clients seen ({share:.0f}%) were kept past what they "
                               f"were told; {texted_n} of them had a text first.")

    # -- no-shows and late arrivals ------------------------------------------------------------
    booked = [v for v in visits if v.kind == "appointment" and v.scheduled is not None
              and v.status in ("done", "noshow", "in_consult", "waiting")]
    att_rows: list[list[Any]] = []
    def weekday(v: ReportVisit) -> str:
        assert v.scheduled is not None
        return WEEKDAYS[_local(v.scheduled, tz).weekday()]

    def by_vet_name(v: ReportVisit) -> str:
        return v.vet_name

    def by_type(v: ReportVisit) -> str:
        return v.type_name or v.type_id or "(none)"

    for dim, key in (("vet", by_vet_name), ("weekday", weekday), ("type", by_type)):
        groups: dict[str, list[ReportVisit]] = defaultdict(list)
        for v in booked:
            groups[key(v)].append(v)
        order = WEEKDAYS if dim == "weekday" else sorted(groups)
        for g in order:
            if g not in groups:
                continue
            vs = groups[g]
            ns = sum(1 for v in vs if v.status == "noshow")
            late = sum(1 for v in vs if v.arrived is not None and v.scheduled is not None
                       and minutes(v.scheduled, v.arrived) > late_min)
            att_rows.append([dim, g, len(vs), ns, round(100 * ns / len(vs), 1), late, round(100 * late / len(vs), 1)])
    tables["attendance"] = Table(
        "attendance", "No-shows and late arrivals", ["by", "group", "booked", "no-shows", "no-show %",
                                                     "late arrivals", "late %"], att_rows,
        f"Late arrival: checked in more than {late_min:.0f} min after the booked time (setting late_arrival_min).")
    if booked:
        ns = sum(1 for v in booked if v.status == "noshow")
        readings["attendance"] = f"{ns} of {len(booked)} booked clients did not come ({100 * ns / len(booked):.1f}%)."

    # -- texts ---------------------------------------------------------------------------------
    # With a vet filter, only texts about that vet's visits count (replies and opt-outs name no vet).
    texts = [x for x in data.texts if vet is None or x.visit_id in ids]
    status_n: dict[str, int] = defaultdict(int)
    kind_n: dict[str, int] = defaultdict(int)
    for x in texts:
        status_n[x.status] += 1
        kind_n[x.kind] += 1
    reply_n: dict[str, int] = defaultdict(int)
    for rp in data.replies:
        if vet is None or rp.visit_id in ids:
            reply_n[rp.kind] += 1
    link = [e for e in data.log if e.type in ("reschedule", "cancel_visit") and e.seq not in undone
            and (vet is None or e.appointment in ids or e.vet == vet)]
    text_rows: list[list[Any]] = [
        ["texts queued", len(texts)],
        ["sent (accepted by the provider)", status_n["sent"] + status_n["delivered"]],
        ["delivered (confirmed)", status_n["delivered"]],
        ["failed", status_n["failed"]],
        ["held or still queued", status_n["held"] + status_n["queued"] + status_n["sending"]],
        ["segments (what the provider bills)", sum(x.segments for x in texts if x.status in ("sent", "delivered"))],
        *[[f"texts: {k}", n] for k, n in sorted(kind_n.items())],
        *[[f"replies: {k}", n] for k, n in sorted(reply_n.items())],
        ["rescheduled through the link", sum(1 for e in link if e.type == "reschedule")],
        ["cancelled through the link", sum(1 for e in link if e.type == "cancel_visit")],
        ["opt-outs (STOP)", data.opt_outs if vet is None else ""],
    ]
    tables["texts"] = Table("texts", "Texts", ["measure", "count"], text_rows,
                            "Texts queued in the period, by what became of them; replies as the notifier read them.")

    # -- estimate accuracy ---------------------------------------------------------------------
    base = _baseline_starts(visits)
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for v in started:
        assert v.started is not None
        g = _group_key(period, v.day)
        first = next((t for t in told_by.get(v.id, []) if t.source == "checkin"), None)
        if first is not None:
            acc[g]["err"].append(abs(minutes(first.start, v.started)))
            acc[g]["inside"].append(1.0 if first.p10 <= v.started <= first.p90 else 0.0)
        if v.id in base:
            acc[g]["base"].append(abs(minutes(base[v.id], v.started)))

    def mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    acc_rows = []
    for g in sorted(acc):
        a = acc[g]
        inside = mean(a["inside"])
        acc_rows.append([g, len(a["err"]), _r(mean(a["err"])), None if inside is None else round(100 * inside, 1),
                         len(a["base"]), _r(mean(a["base"]))])
    tables["accuracy"] = Table(
        "accuracy", "How good our estimates were", ["day" if period.days <= 62 else "week", "estimates",
                                                    "estimate MAE (min)", "started inside range %",
                                                    "baseline visits", "booked-length baseline MAE (min)"],
        acc_rows, "The range told at check-in against the real start; the baseline queues every consult at its "
                  "booked length (the replay scorer's 'booked').")
    all_err = [e for a in acc.values() for e in a["err"]]
    all_base = [e for a in acc.values() for e in a["base"]]
    if all_err or all_base:
        parts_txt = []
        if all_err:
            ins = mean([x for a in acc.values() for x in a["inside"]]) or 0.0
            parts_txt.append(f"our estimate at check-in was off by {mean(all_err):.0f} min on average and "
                             f"{100 * ins:.0f}% started inside the range told")
        if all_base:
            parts_txt.append(f"booked lengths alone would have been off by {mean(all_base):.0f} min")
        said = "; ".join(parts_txt)
        readings["accuracy"] = said[0].upper() + said[1:] + "."
    return rep


def defect_count(rep: Report) -> int:
    return len(rep.tables["defects"].rows)
