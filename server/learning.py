"""Learn how a clinic really runs from its finished visits: pure, no I/O.

The model is deliberately small and made of plain numbers so it can be stored as JSON,
shown to a human (`describe`) and sampled quickly by the estimator's Monte Carlo.

Everything starts from what the booking says (a consult lasts its booked length, clients
come on time, nothing unannounced walks in) and moves away from it only as far as the
clinic's own history shows, by partial pooling: each learned figure is a weighted mean of
its own data and the broader figure above it, the weights being how many visits it rests
on against a prior count. The prior counts are not constants fitted to some clinic: each is
the ratio of the visit-to-visit spread to the spread *between* the groups it pools (vets,
appointment types, a vet's days), both measured on this clinic's history (empirical Bayes),
with a weak hyperprior so that two vets or three days cannot claim more than they show.

Consult lengths are modelled on the log scale as ``log(actual / booked) = mu + sigma * z``:
``mu`` = clinic figure + appointment type + vet + (vet x type), each shrunk as above, and
``z`` drawn from the clinic's own pool of standardised residuals. The estimator adds, per
vet, *today's pace*: a day offset learned online from today's finished consults with the
prior count learned here from how much a vet's days differ (`pace_k`).

`learn` ends by calibrating the range told: it replays the clinic's own recent days through
the estimator, each with a model learned without that day, and records which sampled
quantiles really held 10% and 90% of the starts (`calibration`). See `server.calibration`.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from .domain import DEFAULT_EMERGENCY_MIN, Visit

N_QUANTILES = 101  # stored quantiles of residuals, lateness and gaps

# The spread of one consult around its expected length before any history (log scale).
PRIOR_SIGMA = 0.35
PRIOR_EM_SIGMA = 0.40
PRIOR_GAP_MIN = 1.0
OPEN_HOURS = range(8, 18)
# How many unseen visits' worth of weight a residual-shape, lateness or no-show figure
# from the prior carries against the clinic's own: enough that a first morning cannot
# redraw the curve, small against a week of history.
K_SHAPE = 30.0
K_HOURS = K_SHAPE / 3.0  # the same, for the hours walk-ins and emergencies come at


@dataclass(frozen=True, slots=True)
class Settings:
    """The few choices that are not learned from the clinic itself.

    Each is a statement about clinics in general (how far one clinic's consults may differ
    from its booked lengths, how much a vet's day may differ from their usual), used only
    as a weak hyperprior; `bench/replay_eval.py --loro` picks them on three groups of
    public days and scores the fourth.
    """

    # Between clinics: sd of a clinic's mean log(actual/booked) around "as booked".
    tau_clinic: float = 0.25
    # Hyperpriors for the between-group spreads, each worth `nu` groups of evidence.
    tau_type: float = 0.15
    tau_vet: float = 0.15
    tau_vet_type: float = 0.08
    tau_day: float = 0.10  # a vet's day against their usual (today's pace)
    # A type the clinic has never done: how far its booked length may be off, beyond how far
    # the clinic's established types differ (their lengths have been corrected by years of
    # booking; a new one's is a guess). Wide, so that its first consults today teach it fast.
    tau_new_type: float = 0.40
    # An off day (a vet unwell, a difficult case list): how often, and how far off. The
    # history of a steady clinic cannot rule one out; a run of slow consults reveals it.
    off_share: float = 0.10
    tau_off: float = 0.20
    nu: float = 2.0
    # Rates of walk-ins and emergencies: prior "days" of nothing extra (the booking's view).
    k_rate_days: float = 1.0
    # Calibration by replaying the clinic's own days: how many days, and the share of
    # starts the range leaves out above its end (0.065: a new day brings more surprises
    # than the replayed ones; chosen by leave-one-regime-out, see README) and below its
    # start (`tail_low`: the range aims at 80% or a little more, and an early start is the
    # error clients mind least, so its low end need not be held back).
    calibration_days: int = 4
    tail: float = 0.065
    tail_low: float = 0.10


DEFAULT_SETTINGS = Settings()


def _minutes(a: datetime, b: datetime) -> float:
    return (a - b).total_seconds() / 60.0


def _quantiles(values: list[float] | np.ndarray, n: int = N_QUANTILES) -> list[float]:
    return [float(x) for x in np.quantile(np.asarray(values, dtype=float), np.linspace(0.0, 1.0, n))]


def _normal_quantiles(mean: float, sd: float, n: int = N_QUANTILES) -> list[float]:
    # Clipped normal scores: avoids scipy for one inverse CDF.
    u = np.linspace(0.005, 0.995, n)
    z = np.sqrt(2.0) * erfinv(2.0 * u - 1.0)
    return [float(mean + sd * x) for x in z]


def _blend_quantiles(data: list[float], prior: list[float], k: float) -> list[float]:
    """Quantiles of a mixture: the data's empirical distribution with weight n, the prior's
    with weight k. A thin history moves the curve a little; a long one replaces it."""
    n = len(data)
    if n == 0:
        return list(prior)
    if k <= 0:
        return _quantiles(data)
    # Represent the prior by its quantile points, weighted to count as k observations.
    pts = np.concatenate([np.asarray(data, dtype=float), np.asarray(prior, dtype=float)])
    w = np.concatenate([np.full(n, 1.0), np.full(len(prior), k / len(prior))])
    order = np.argsort(pts)
    cw = np.cumsum(w[order])
    cw = (cw - 0.5 * w[order]) / cw[-1]
    return [float(x) for x in np.interp(np.linspace(0.0, 1.0, N_QUANTILES), cw, pts[order])]


def erfinv(y: np.ndarray) -> np.ndarray:
    """The inverse error function, elementwise (the estimator draws normal quantiles with it).

    Giles' single-precision approximation: plenty for prior quantiles."""
    w = -np.log((1.0 - y) * (1.0 + y))
    small = w < 5.0
    ws = w - 2.5
    wl = np.sqrt(np.maximum(w, 5.0)) - 3.0
    ps: np.ndarray = np.full_like(w, 2.81022636e-08)
    for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
              -0.00417768164, 0.246640727, 1.50140941):
        ps = c + ps * ws
    pl: np.ndarray = np.full_like(w, -0.000200214257)
    for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
              0.00943887047, 1.00167406, 2.83297682):
        pl = c + pl * wl
    return np.asarray(np.where(small, ps, pl) * y)


def _between_variance(means: list[float], counts: list[float], sigma2: float, tau0: float, nu: float) -> float:
    """Empirical-Bayes spread between groups: the observed variance of the group means less
    what their own noise explains, pooled with a hyperprior worth `nu` groups at `tau0`
    (two vets or three days cannot prove there is no difference at all). A group counts by
    n / (n + 10): one odd visit of a rare type says little about how much types differ."""
    w = [c / (c + 10.0) for c in counts]
    excess = sum(wi * (m * m - sigma2 / max(c, 1.0)) for wi, m, c in zip(w, means, counts, strict=True))
    return max((max(excess, 0.0) + nu * tau0 * tau0) / (sum(w) + nu), 1e-4)


@dataclass(slots=True)
class Model:
    """What the estimator knows about one clinic. Plain numbers only (see `to_json`)."""

    booked: dict[str, float]
    n_visits: int = 0
    n_days: int = 0
    # Consult lengths, log(actual/booked). With no history: mean length = booked length.
    sigma: float = PRIOR_SIGMA
    mean_log_ratio: float = -PRIOR_SIGMA**2 / 2.0  # the clinic's figure
    mean_var: float = DEFAULT_SETTINGS.tau_clinic**2  # how unsure we are of it
    type_mu: dict[str, float] = field(default_factory=dict)  # offsets from the clinic figure
    type_sigma: dict[str, float] = field(default_factory=dict)
    type_n: dict[str, int] = field(default_factory=dict)
    vet_speed: dict[str, float] = field(default_factory=dict)  # log offset vs the clinic
    vet_n: dict[str, int] = field(default_factory=dict)
    vet_type_mu: dict[str, float] = field(default_factory=dict)  # "vet|type": offset vs type + vet
    vet_type_n: dict[str, int] = field(default_factory=dict)
    tau_type2: float = DEFAULT_SETTINGS.tau_type**2  # between-group spreads (empirical Bayes)
    tau_vet2: float = DEFAULT_SETTINGS.tau_vet**2
    tau_vt2: float = DEFAULT_SETTINGS.tau_vet_type**2
    tau_new_type2: float = DEFAULT_SETTINGS.tau_new_type**2  # added for a type with no history
    # Today's pace: prior count (in consults) for a vet's day offset: sigma^2 / tau_day^2.
    pace_k: float = PRIOR_SIGMA**2 / DEFAULT_SETTINGS.tau_day**2
    pace_off_share: float = DEFAULT_SETTINGS.off_share
    pace_off_var: float = DEFAULT_SETTINGS.tau_off**2
    residuals: list[float] = field(default_factory=lambda: _normal_quantiles(0.0, 1.0))
    gaps: list[float] = field(default_factory=lambda: [0.0] * N_QUANTILES)
    lateness: list[float] = field(default_factory=lambda: [0.0] * N_QUANTILES)
    noshow_rate: float = 0.0
    # Emergencies: log(actual) = em_a + em_b * (log(announced) - log(45)) + em_sigma * z.
    em_a: float = math.log(DEFAULT_EMERGENCY_MIN)
    em_b: float = 1.0
    em_sigma: float = PRIOR_EM_SIGMA
    em_len_mu: float = math.log(DEFAULT_EMERGENCY_MIN)  # log minutes, no announcement
    em_len_sigma: float = PRIOR_EM_SIGMA
    walkin_len_mu: float = math.log(20.0)
    walkin_len_sigma: float = PRIOR_SIGMA
    # Arrivals per vet per day in each local clock hour (24 entries); "*" = any vet.
    walkin_rate: dict[str, list[float]] = field(default_factory=dict)
    emergency_rate: dict[str, list[float]] = field(default_factory=dict)
    # Gamma prior strength, in days, for today's own count of walk-ins / emergencies.
    rate_days: dict[str, float] = field(default_factory=lambda: {"walkin": 1.0, "emergency": 1.0})
    utc_offset_min: float | None = None  # the clinic's clock, for hour-of-day lookups
    day_turnover_min: float = 0.0  # when the history's days turn over (`day_turnover`)
    # Sampled quantiles the range is read at, from replaying the clinic's own days
    # (`server.calibration`): [low, high] for clients already here and for those to come.
    calibration: dict[str, list[float]] = field(
        default_factory=lambda: {"here": [0.1, 0.9], "coming": [0.1, 0.9]})
    calibrated_on: int = 0  # estimates the calibration rests on (0: not calibrated)
    # The start told, as weights on (booked-length answer, median without unannounced
    # emergencies, median with them): see `server.estimator.points`. No history: booked.
    point: dict[str, list[float]] = field(
        default_factory=lambda: {"here": [1.0, 0.0, 0.0], "coming": [1.0, 0.0, 0.0]})

    # -- durations -------------------------------------------------------------------------

    def duration_mu_sigma(self, vet: str, type_id: str | None, booked_min: float) -> tuple[float, float]:
        """Log-minutes location and spread of a consult of this type with this vet."""
        booked_min = max(booked_min, 1.0)
        mu = self.mean_log_ratio + self.vet_speed.get(vet, 0.0)
        if type_id is not None:
            mu += self.type_mu.get(type_id, 0.0) + self.vet_type_mu.get(f"{vet}|{type_id}", 0.0)
        sigma = self.type_sigma.get(type_id or "", self.sigma)
        return math.log(booked_min) + mu, sigma

    def duration_uncertainty(self, vet: str, type_id: str | None) -> float:
        """Variance of our estimate of this vet's `mu` for this type (not of one consult):
        large for a new clinic, a new vet or a type never seen, small after months."""
        s2 = self.sigma**2
        var = self.mean_var
        nv = self.vet_n.get(vet, 0)
        var += s2 / (nv + s2 / self.tau_vet2)
        if type_id is not None:
            var += self.type_prior_var(type_id) + self.vet_type_prior_var(vet, type_id)
        return var

    def type_prior_var(self, type_id: str) -> float:
        """Variance of our estimate of this type's offset before today: shrinking with its
        history; for a type never done, the spread between types plus `tau_new_type2`."""
        s2 = self.sigma**2
        nt = self.type_n.get(type_id, 0)
        tau2 = self.tau_type2 + (self.tau_new_type2 / 2.0 if nt == 0 else 0.0)
        return s2 / (nt + s2 / tau2)

    def vet_type_prior_var(self, vet: str, type_id: str) -> float:
        """Variance of our estimate of this vet's own offset at this type, before today. For a
        type the clinic has never done, how one vet does it against another is as unknown as
        the type itself (a vet who seldom does dentals takes three times as long as one who
        does them weekly), so `tau_new_type2` is added here too."""
        s2 = self.sigma**2
        nvt = self.vet_type_n.get(f"{vet}|{type_id}", 0)
        tau2 = self.tau_vt2 + (self.tau_new_type2 / 2.0 if self.type_n.get(type_id, 0) == 0 else 0.0)
        return s2 / (nvt + s2 / tau2)

    def expected_minutes(self, vet: str, type_id: str | None, booked_min: float) -> float:
        """Mean consult length in minutes (log-normal mean), for summaries and tests."""
        mu, sigma = self.duration_mu_sigma(vet, type_id, booked_min)
        return math.exp(mu + sigma * sigma / 2.0)

    def speed_factor(self, vet: str) -> float:
        """Typical actual/booked ratio for this vet (1.0 = on booked time)."""
        return math.exp(self.mean_log_ratio + self.vet_speed.get(vet, 0.0))

    def emergency_mu_sigma(self, expected_min: float | None) -> tuple[float, float]:
        if expected_min:
            return self.em_a + self.em_b * (math.log(expected_min) - math.log(DEFAULT_EMERGENCY_MIN)), self.em_sigma
        return self.em_len_mu, self.em_len_sigma

    def rate(self, kind: str, vet: str) -> list[float]:
        """Arrivals per day by local hour for this vet (walk-ins or emergencies)."""
        table = self.walkin_rate if kind == "walkin" else self.emergency_rate
        if vet in table:
            return table[vet]
        if "*" in table:
            return table["*"]
        return [0.0] * 24

    # -- serialisation ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `Model.from_json` reads it back."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Model:
        """Rebuild a model written by `to_json` (unknown keys are ignored)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})

    def describe(self) -> str:
        """A few lines for a human: what was learned and from how much."""
        lines = [f"learned from {self.n_visits} visits over {self.n_days} days"]
        for vet in sorted(self.vet_n):
            ratio = self.speed_factor(vet)
            lines.append(
                f"  vet {vet}: {self.vet_n[vet]} visits, consults take {ratio:.2f}x booked time"
                f" ({'slower' if ratio > 1.05 else 'faster' if ratio < 0.95 else 'about'} than booked)"
            )
        late = self.lateness[N_QUANTILES // 2]
        lines.append(f"  no-show rate {self.noshow_rate:.1%}, median lateness {late:+.1f} min")
        walk = sum(sum(r) for k, r in self.walkin_rate.items() if k != "*")
        em = sum(sum(r) for k, r in self.emergency_rate.items() if k != "*")
        lines.append(f"  per day: {walk:.1f} walk-ins, {em:.1f} emergencies")
        lines.append(f"  today's pace: on an ordinary day a vet's first {self.pace_k:.0f} consults count as"
                     f" much as their history; a run of consults {math.exp(self.pace_off_var ** 0.5):.1f}x"
                     " off their usual is followed within a few")
        if self.calibrated_on:
            h, c = self.calibration["here"], self.calibration["coming"]
            lines.append(f"  range told: sampled quantiles {h[0]:.2f}-{h[1]:.2f} (waiting), {c[0]:.2f}-{c[1]:.2f}"
                         f" (to come), from replaying {self.calibrated_on} past estimates")
        here, coming = self.point["here"][0], self.point["coming"][0]
        if max(here, coming) >= 0.005:  # shown as a whole percent
            lines.append(f"  start told: {here:.0%} (waiting) and {coming:.0%} (to come) the booked-length"
                         " answer, the rest the simulation's (its past days do not yet show the"
                         " simulation better)" if self.n_visits else "  start told: the booked-length answer")
        return "\n".join(lines)


def learn(history: Iterable[Visit], booked: Mapping[str, float], settings: Settings | None = None,
          *, calibrate: bool = True) -> Model:
    """Fit a `Model` from finished visits of earlier days.

    `booked` maps appointment type to its booked minutes. Works with no history at all
    (the booking's view, with honest spreads); every figure is shrunk toward a broader one
    by how much evidence it has. With `calibrate`, the range is then calibrated by
    replaying the most recent days (see `server.calibration`).
    """
    s = settings or DEFAULT_SETTINGS
    visits = list(history)
    key = (tuple((v.id, v.kind, v.vet, v.type, v.booked_min, v.scheduled, v.arrived, v.started, v.ended,
                       v.noshow, v.expected_min) for v in visits), tuple(sorted(booked.items())), s, calibrate)
    if key in _LEARNED:
        # The same history learned again (a restart, a second app in one process): the same
        # model, without replaying the days again. A copy: models are mutable.
        return Model.from_json(copy.deepcopy(_LEARNED[key]))
    model = fit(visits, booked, s)
    if calibrate and model.n_days >= 2:
        from .calibration import calibrate_model  # the estimator imports this module

        calibrate_model(model, visits, booked, s)
    if len(_LEARNED) >= 8:
        _LEARNED.pop(next(iter(_LEARNED)))
    _LEARNED[key] = copy.deepcopy(model.to_json())
    return model


_LEARNED: dict[tuple[Any, ...], dict[str, Any]] = {}


def fit(visits: list[Visit], booked: Mapping[str, float], s: Settings = DEFAULT_SETTINGS) -> Model:
    """Everything but the range calibration (see `learn`)."""
    model = Model(booked={k: float(v) for k, v in booked.items()})
    model.mean_var = s.tau_clinic**2
    model.tau_type2, model.tau_vet2, model.tau_vt2 = s.tau_type**2, s.tau_vet**2, s.tau_vet_type**2
    model.tau_new_type2 = s.tau_new_type**2
    model.pace_k = PRIOR_SIGMA**2 / s.tau_day**2
    model.pace_off_share, model.pace_off_var = s.off_share, s.tau_off**2
    model.calibration = {g: [s.tail_low, 1.0 - s.tail] for g in ("here", "coming")}
    model.day_turnover_min = day_turnover(visits)
    days: set[str] = set()
    offsets: list[float] = []
    for v in visits:
        t = v.scheduled or v.arrived or v.started
        if t is not None:
            days.add(visit_day(v, model.day_turnover_min))
            off = t.utcoffset()
            if off is not None:
                offsets.append(off.total_seconds() / 60.0)
    model.n_days = len(days)
    if offsets:
        model.utc_offset_min = float(max(set(offsets), key=offsets.count))

    _learn_durations(model, visits, s)
    if model.n_visits:
        # Until the clinic's own days say otherwise (`server.calibration`), the simulation's
        # median with emergencies at their learned rates.
        model.point = {g: [0.0, 0.0, 1.0] for g in ("here", "coming")}
    _learn_gaps(model, visits)
    _learn_arrivals(model, visits)
    _learn_emergencies(model, visits)
    _learn_rates(model, visits, s)
    return model


def _consult_minutes(v: Visit) -> float | None:
    if v.started is None or v.ended is None:
        return None
    return max(_minutes(v.ended, v.started), 0.5)


def day_turnover(visits: Iterable[Visit]) -> float:
    """When the clinic's day turns over, in minutes after midnight of the clock its visits'
    times are written in: the middle of the longest stretch of the day with nothing booked,
    arriving, started or ended (the night). Visits read from the store are in UTC, where a
    clinic's evening falls after midnight: grouping them by their UTC date would cut each
    day in two (an evening emergency counted as a day of its own). 0 (midnight) when the
    clinic never rests or there is no history."""
    busy = np.zeros(144, dtype=bool)  # ten-minute bins of the day
    for v in visits:
        for t in (v.scheduled, v.arrived, v.started, v.ended):
            if t is not None:
                busy[(t.hour * 60 + t.minute) // 10] = True
    if not busy.any() or busy.all():
        return 0.0
    first = int(np.argmax(busy))  # walk the circle from a busy bin: every quiet run is whole
    ring = np.roll(busy, -first)
    best_len, best_start, run = 0, 0, 0
    for i, b in enumerate(np.append(ring, True)):
        if b:
            if run > best_len:
                best_len, best_start = run, i - run
            run = 0
        else:
            run += 1
    if best_len < 6:  # less than an hour's rest: no night to speak of
        return 0.0
    return float(((first + best_start) * 10 + best_len * 5) % 1440)


def visit_day(v: Visit, turnover_min: float = 0.0) -> str:
    """The date a visit belongs to (for grouping history by day): its start, arrival or
    booked time, on a calendar whose days turn over at `turnover_min` (see `day_turnover`)."""
    t = v.started or v.arrived or v.scheduled
    assert t is not None
    return (t - timedelta(minutes=turnover_min)).date().isoformat()


def _learn_durations(model: Model, visits: list[Visit], s: Settings) -> None:
    rows: list[tuple[str, str, str, float]] = []  # vet, type, day, log(actual/booked)
    walk_logs: list[float] = []
    for v in visits:
        if v.kind == "emergency" or v.type is None:
            continue
        d = _consult_minutes(v)
        if d is None:
            continue
        booked = v.booked_min or model.booked.get(v.type, 0.0)
        if booked <= 0:
            continue
        rows.append((v.vet, v.type, visit_day(v, model.day_turnover_min), math.log(d / booked)))
        if v.kind == "walkin":
            walk_logs.append(math.log(d))
    model.n_visits = n = len(rows)
    if not rows:
        return
    lr = np.array([r[3] for r in rows])
    types = [r[1] for r in rows]
    idx: dict[str, dict[Any, list[int]]] = {"type": defaultdict(list), "vet": defaultdict(list),
                                            "vt": defaultdict(list), "day": defaultdict(list)}
    for i, (vet, t, day, _) in enumerate(rows):
        idx["type"][t].append(i)
        idx["vet"][vet].append(i)
        idx["vt"][f"{vet}|{t}"].append(i)
        idx["day"][(vet, day)].append(i)

    # Backfitting of clinic mean, type, vet and vet x type offsets, each a partial-pooling
    # mean with prior count sigma^2 / tau^2; the taus are re-estimated from the offsets.
    prior_mu = -PRIOR_SIGMA**2 / 2.0  # "as booked": the mean consult lasts its booked length
    s2 = float(np.var(lr)) if n > 1 else PRIOR_SIGMA**2
    tau2 = {"type": s.tau_type**2, "vet": s.tau_vet**2, "vt": s.tau_vet_type**2}
    tau0 = {"type": s.tau_type, "vet": s.tau_vet, "vt": s.tau_vet_type}
    groups = ("type", "vet", "vt")
    keys = {g: list(idx[g]) for g in groups}
    codes = {g: np.empty(n, dtype=np.intp) for g in groups}
    for g in groups:
        for c, key in enumerate(keys[g]):
            codes[g][idx[g][key]] = c
    sizes = {g: np.bincount(codes[g], minlength=len(keys[g])).astype(float) for g in groups}
    values = {g: np.zeros(len(keys[g])) for g in groups}
    m = prior_mu
    for _ in range(6):
        total = sum(values[g][codes[g]] for g in groups)
        k_c = s2 / s.tau_clinic**2
        m = float(((lr - total).sum() + k_c * prior_mu) / (n + k_c))
        for g in groups:
            part = lr - m - (total - values[g][codes[g]])
            sums = np.bincount(codes[g], weights=part, minlength=len(keys[g]))
            new = sums / (sizes[g] + s2 / tau2[g])
            total = total - values[g][codes[g]] + new[codes[g]]
            values[g] = new
            tau2[g] = _between_variance(list(sums / sizes[g]), list(sizes[g]), s2, tau0[g], s.nu)
        resid = lr - m - total
        s2 = (float((resid**2).sum()) + K_SHAPE * PRIOR_SIGMA**2) / (n + K_SHAPE)
    eff = {g: {key: float(values[g][c]) for c, key in enumerate(keys[g])} for g in groups}

    model.mean_log_ratio = m
    model.mean_var = s2 / (n + s2 / s.tau_clinic**2)
    model.sigma = math.sqrt(s2)
    model.type_mu, model.vet_speed, model.vet_type_mu = eff["type"], eff["vet"], eff["vt"]
    model.tau_type2, model.tau_vet2, model.tau_vt2 = tau2["type"], tau2["vet"], tau2["vt"]
    model.type_n = {t: len(ix) for t, ix in idx["type"].items()}
    model.vet_n = {v: len(ix) for v, ix in idx["vet"].items()}
    model.vet_type_n = {k: len(ix) for k, ix in idx["vt"].items()}
    type_sigma = {
        t: math.sqrt((float((resid[ix] ** 2).sum()) + K_SHAPE * s2) / (len(ix) + K_SHAPE))
        for t, ix in idx["type"].items()
    }
    model.type_sigma = type_sigma
    z = resid / np.array([type_sigma[t] for t in types])
    model.residuals = _blend_quantiles([float(x) for x in z], _normal_quantiles(0.0, 1.0), K_SHAPE)

    # How much a vet's day differs from their usual: the spread of (vet, day) mean residuals
    # beyond what their own noise explains. Its ratio to one consult's spread is the prior
    # count today's own consults are weighed against.
    day_means = [float(resid[ix].mean()) for ix in idx["day"].values()]
    tau_day2 = _between_variance(day_means, [len(ix) for ix in idx["day"].values()], s2, s.tau_day, s.nu)
    model.pace_k = s2 / tau_day2
    model.pace_off_var = max(s.tau_off**2, tau_day2)

    if walk_logs:
        k = 5.0
        wl = np.array(walk_logs)
        prior_mu = math.log(20.0) + m
        model.walkin_len_mu = float((wl.sum() + k * prior_mu) / (len(wl) + k))
        var = float(((wl - model.walkin_len_mu) ** 2).sum())
        model.walkin_len_sigma = math.sqrt((var + k * PRIOR_SIGMA**2) / (len(wl) + k))


def _learn_gaps(model: Model, visits: list[Visit]) -> None:
    """Turnaround between consults, measured only when the next client was already waiting."""
    by_vet_day: dict[tuple[str, str], list[Visit]] = defaultdict(list)
    for v in visits:
        if v.started is not None and v.ended is not None:
            by_vet_day[(v.vet, visit_day(v, model.day_turnover_min))].append(v)
    gaps: list[float] = []
    for seq in by_vet_day.values():
        seq.sort(key=lambda x: x.started or x.ended or datetime.min)
        for a, b in zip(seq, seq[1:], strict=False):
            assert a.ended is not None and b.started is not None
            if b.arrived is None or b.arrived >= a.ended:
                continue  # the vet was waiting for the client, not the other way round
            if b.scheduled is not None and b.scheduled - timedelta(minutes=5) > a.ended:
                continue  # held back by the 5-minute rule
            g = _minutes(b.started, a.ended)
            if 0.0 <= g <= 15.0:
                gaps.append(g)
    model.gaps = _blend_quantiles(gaps, [0.0] * N_QUANTILES, K_SHAPE / 3.0)


def _learn_arrivals(model: Model, visits: list[Visit]) -> None:
    late: list[float] = []
    booked = noshows = 0
    for v in visits:
        if v.kind != "appointment" or v.scheduled is None:
            continue
        booked += 1
        if v.arrived is None:
            noshows += 1
        else:
            late.append(_minutes(v.arrived, v.scheduled))
    # The booking's view: everyone comes, on time.
    model.noshow_rate = noshows / (booked + K_SHAPE)
    model.lateness = _blend_quantiles(late, [0.0] * N_QUANTILES, K_SHAPE)


def _learn_emergencies(model: Model, visits: list[Visit]) -> None:
    """Emergency lengths. An announced length is a guess made at the door: regress the real
    length on it (log scale), starting from "the announcement is right" (slope 1) and moving
    as far as this clinic's emergencies show; long announcements usually run shorter."""
    xs: list[float] = []
    ys: list[float] = []
    lens: list[float] = []
    for v in visits:
        if v.kind != "emergency":
            continue
        d = _consult_minutes(v)
        if d is None:
            continue
        lens.append(math.log(d))
        if v.expected_min:
            xs.append(math.log(v.expected_min) - math.log(DEFAULT_EMERGENCY_MIN))
            ys.append(math.log(d))
    k = 6.0  # the prior line is worth a handful of emergencies
    if xs:
        x, y = np.array(xs), np.array(ys)
        # Ridge toward (a, b) = (log 45, 1): solve (X'X + kI) beta = X'y + k beta0.
        X = np.column_stack([np.ones_like(x), x])
        beta0 = np.array([math.log(DEFAULT_EMERGENCY_MIN), 1.0])
        beta = np.linalg.solve(X.T @ X + k * np.eye(2), X.T @ y + k * beta0)
        model.em_a, model.em_b = float(beta[0]), float(beta[1])
        r = y - X @ beta
        model.em_sigma = math.sqrt((float((r**2).sum()) + k * PRIOR_EM_SIGMA**2) / (len(r) + k))
    if lens:
        ln = np.array(lens)
        prior = math.log(DEFAULT_EMERGENCY_MIN)
        model.em_len_mu = float((ln.sum() + k * prior) / (len(ln) + k))
        var = float(((ln - model.em_len_mu) ** 2).sum())
        model.em_len_sigma = math.sqrt((var + k * PRIOR_EM_SIGMA**2) / (len(ln) + k))


def local_hour(t: datetime, offset_min: float | None) -> int:
    """The clinic-local hour of `t` (`offset_min`: the clinic's UTC offset the model learned)."""
    if offset_min is not None and t.utcoffset() is not None:
        off = t.utcoffset()
        assert off is not None
        t = t + timedelta(minutes=offset_min) - off
    return t.hour


def _learn_rates(model: Model, visits: list[Visit], s: Settings) -> None:
    """Walk-ins and emergencies per vet and clock hour. The booking's view is "none", worth
    `k_rate_days` days; the history's days then speak for themselves. `rate_days` is how
    many days today's own count is weighed against (Gamma-Poisson: few when the clinic's
    days differ much more than chance would make them, many when they do not).

    A vet's rate per hour is the clinic's daily rate x the vet's share x the hour's share,
    each share partially pooled toward the plain view: every vet an equal share (`K_SHAPE`
    arrivals' worth) and arrivals spread over the hours as the clinic's bookings are
    (`K_HOURS`, a lighter weight, as for the turnaround curve: when in the day emergencies
    come is a clinic's own pattern, and a wrong hour moves clients already waiting). Ten
    emergencies in a first week, eight of them one vet's and four at 11:00, say more about
    how many come than about whom or when."""
    days = max(model.n_days, 1)
    day_list = sorted({visit_day(v, model.day_turnover_min) for v in visits if (v.started or v.arrived or v.scheduled)})
    # When the clinic is open: its booked (or walked-in) clients' hours.
    open_hours = np.zeros(24)
    for v in visits:
        t = v.scheduled or v.arrived
        if v.kind != "emergency" and t is not None:
            open_hours[local_hour(t, model.utc_offset_min)] += 1.0
    if open_hours.sum() <= 0:
        open_hours[list(OPEN_HOURS)] = 1.0
    open_hours /= open_hours.sum()
    for kind, table in (("walkin", model.walkin_rate), ("emergency", model.emergency_rate)):
        counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(24))
        per_day: dict[str, float] = dict.fromkeys(day_list, 0.0)
        vets: set[str] = set()
        for v in visits:
            vets.add(v.vet)
            if v.kind != kind or v.arrived is None:
                continue
            counts[v.vet][local_hour(v.arrived, model.utc_offset_min)] += 1.0
            day = visit_day(v, model.day_turnover_min)
            per_day[day] = per_day.get(day, 0.0) + 1.0
        if not vets:
            continue
        by_hour = sum((counts[vet] for vet in vets), np.zeros(24))
        n = float(by_hour.sum())
        daily = n / (days + s.k_rate_days)  # the clinic's, all vets together
        hour_share = (by_hour + K_HOURS * open_hours) / (n + K_HOURS)
        for vet in vets:
            vet_share = (float(counts[vet].sum()) + K_SHAPE / len(vets)) / (n + K_SHAPE)
            table[vet] = [float(x) for x in daily * vet_share * hour_share]
        table["*"] = [float(x) for x in daily / len(vets) * hour_share]
        # Method of moments for the Gamma prior on a day's clinic-wide rate.
        c_days = np.array(list(per_day.values()) or [0.0])
        mean, var = float(c_days.mean()), float(c_days.var(ddof=1)) if len(c_days) > 1 else 0.0
        if mean <= 0:
            model.rate_days[kind] = float(days + s.k_rate_days)
        else:
            # var = mean + mean^2 / shape; prior days beta = shape / mean. Bounded by the
            # history itself (no more days than it has) and below by one day.
            excess = max(var - mean, mean * mean / 50.0)
            model.rate_days[kind] = float(min(max(mean / excess, 1.0), days + s.k_rate_days))
