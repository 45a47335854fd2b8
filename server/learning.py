"""Learn how a clinic really runs from its finished visits: pure, no I/O.

The model is deliberately small and made of plain numbers so it can be stored as JSON,
shown to a human (`describe`) and sampled quickly by the estimator's Monte Carlo.

Consult lengths are modelled on the log scale as ``log(actual / booked) = mu + sigma * z``,
where ``mu`` is the vet's figure for that appointment type shrunk toward the type's
clinic-wide figure (and, for types a vet has rarely done, toward the vet's usual speed),
and ``z`` is drawn from the clinic's own pool of standardised residuals, so a long right
tail seen in history is reproduced rather than assumed away by a normal curve.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from .domain import DEFAULT_EMERGENCY_MIN, Visit

# Pseudo-counts for shrinkage: how many visits' worth of weight the prior carries.
# A handful of visits should move a figure, a single odd visit should not.
K_TYPE = 8.0  # type's clinic-wide mean toward the clinic's overall mean
K_VET = 10.0  # vet's speed toward "like everyone else"
K_VET_TYPE = 6.0  # vet x type toward type mean + vet speed
K_SIGMA = 10.0  # spread of a type toward the clinic's spread
K_NOSHOW = 30.0
K_EMERGENCY = 6.0
N_QUANTILES = 101  # stored quantiles of residuals, lateness and gaps

# Priors used before any history exists (or to anchor thin histories).
PRIOR_SIGMA = 0.35
PRIOR_NOSHOW = 0.05
PRIOR_EM_RATIO_SIGMA = 0.35
PRIOR_EM_LEN_SIGMA = 0.45
PRIOR_GAP_MIN = 1.0
# Lateness prior: most clients come a few minutes early, some a little late.
PRIOR_LATENESS_MEAN = -4.0
PRIOR_LATENESS_SD = 7.0
PRIOR_WALKIN_PER_VET_DAY = 0.8
PRIOR_EMERGENCY_PER_VET_DAY = 0.6
OPEN_HOURS = range(8, 18)  # where the prior arrival rates are spread


def _minutes(a: datetime, b: datetime) -> float:
    return (a - b).total_seconds() / 60.0


def _quantiles(values: list[float], n: int = N_QUANTILES) -> list[float]:
    return [float(x) for x in np.quantile(np.asarray(values, dtype=float), np.linspace(0.0, 1.0, n))]


def _normal_quantiles(mean: float, sd: float, n: int = N_QUANTILES) -> list[float]:
    # Clipped normal scores: avoids scipy for one inverse CDF.
    u = np.linspace(0.005, 0.995, n)
    z = np.sqrt(2.0) * _erfinv(2.0 * u - 1.0)
    return [float(mean + sd * x) for x in z]


def _erfinv(y: np.ndarray) -> np.ndarray:
    # Giles' single-precision approximation: plenty for prior quantiles.
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


@dataclass(slots=True)
class Model:
    """What the estimator knows about one clinic. Plain numbers only (see `to_json`)."""

    booked: dict[str, float]
    n_visits: int = 0
    n_days: int = 0
    mean_log_ratio: float = 0.0  # clinic-wide log(actual/booked)
    sigma: float = PRIOR_SIGMA
    type_mu: dict[str, float] = field(default_factory=dict)
    type_sigma: dict[str, float] = field(default_factory=dict)
    type_n: dict[str, int] = field(default_factory=dict)
    vet_speed: dict[str, float] = field(default_factory=dict)  # log offset vs the clinic
    vet_n: dict[str, int] = field(default_factory=dict)
    vet_type_mu: dict[str, float] = field(default_factory=dict)  # key "vet|type"
    residuals: list[float] = field(default_factory=lambda: _normal_quantiles(0.0, 1.0))
    gaps: list[float] = field(default_factory=lambda: [PRIOR_GAP_MIN] * N_QUANTILES)
    lateness: list[float] = field(
        default_factory=lambda: _normal_quantiles(PRIOR_LATENESS_MEAN, PRIOR_LATENESS_SD)
    )
    noshow_rate: float = PRIOR_NOSHOW
    em_ratio_mu: float = 0.0  # log(actual / announced) for emergencies with an announcement
    em_ratio_sigma: float = PRIOR_EM_RATIO_SIGMA
    em_len_mu: float = math.log(DEFAULT_EMERGENCY_MIN)  # log minutes, no announcement
    em_len_sigma: float = PRIOR_EM_LEN_SIGMA
    walkin_len_mu: float = math.log(20.0)
    walkin_len_sigma: float = PRIOR_SIGMA
    # Arrivals per vet per day in each local clock hour (24 entries); "*" = any vet.
    walkin_rate: dict[str, list[float]] = field(default_factory=dict)
    emergency_rate: dict[str, list[float]] = field(default_factory=dict)
    utc_offset_min: float | None = None  # the clinic's clock, for hour-of-day lookups

    # -- durations -------------------------------------------------------------------------

    def duration_mu_sigma(self, vet: str, type_id: str | None, booked_min: float) -> tuple[float, float]:
        """Log-minutes location and spread of a consult of this type with this vet."""
        booked_min = max(booked_min, 1.0)
        speed = self.vet_speed.get(vet, 0.0)
        if type_id is not None and f"{vet}|{type_id}" in self.vet_type_mu:
            mu = self.vet_type_mu[f"{vet}|{type_id}"]
        elif type_id is not None and type_id in self.type_mu:
            mu = self.type_mu[type_id] + speed
        else:
            # Never seen: booked length scaled by this vet's usual speed.
            mu = self.mean_log_ratio + speed
        sigma = self.type_sigma.get(type_id or "", self.sigma)
        return math.log(booked_min) + mu, sigma

    def expected_minutes(self, vet: str, type_id: str | None, booked_min: float) -> float:
        """Mean consult length in minutes (log-normal mean), for summaries and tests."""
        mu, sigma = self.duration_mu_sigma(vet, type_id, booked_min)
        return math.exp(mu + sigma * sigma / 2.0)

    def speed_factor(self, vet: str) -> float:
        """Typical actual/booked ratio for this vet (1.0 = on booked time)."""
        return math.exp(self.mean_log_ratio + self.vet_speed.get(vet, 0.0))

    def rate(self, kind: str, vet: str) -> list[float]:
        """Arrivals per day by local hour for this vet (walk-ins or emergencies)."""
        table = self.walkin_rate if kind == "walkin" else self.emergency_rate
        if vet in table:
            return table[vet]
        if "*" in table:
            return table["*"]
        per_day = PRIOR_WALKIN_PER_VET_DAY if kind == "walkin" else PRIOR_EMERGENCY_PER_VET_DAY
        return [per_day / len(OPEN_HOURS) if h in OPEN_HOURS else 0.0 for h in range(24)]

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
        return "\n".join(lines)


def learn(history: Iterable[Visit], booked: Mapping[str, float]) -> Model:
    """Fit a `Model` from finished visits of earlier days.

    `booked` maps appointment type to its booked minutes. Works with no history at all
    (priors only); every figure is shrunk toward a broader one when its data is thin.
    """
    visits = list(history)
    model = Model(booked={k: float(v) for k, v in booked.items()})
    days: set[str] = set()
    offsets: list[float] = []
    for v in visits:
        t = v.scheduled or v.arrived or v.started
        if t is not None:
            days.add(t.date().isoformat())
            off = t.utcoffset()
            if off is not None:
                offsets.append(off.total_seconds() / 60.0)
    model.n_days = len(days)
    if offsets:
        model.utc_offset_min = float(max(set(offsets), key=offsets.count))

    _learn_durations(model, visits)
    _learn_gaps(model, visits)
    _learn_arrivals(model, visits)
    _learn_emergencies(model, visits)
    _learn_rates(model, visits)
    return model


def _consult_minutes(v: Visit) -> float | None:
    if v.started is None or v.ended is None:
        return None
    return max(_minutes(v.ended, v.started), 0.5)


def _learn_durations(model: Model, visits: list[Visit]) -> None:
    rows: list[tuple[str, str, float]] = []  # vet, type, log(actual/booked)
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
        rows.append((v.vet, v.type, math.log(d / booked)))
        if v.kind == "walkin":
            walk_logs.append(math.log(d))
    model.n_visits = len(rows)
    if not rows:
        return
    lr = np.array([r[2] for r in rows])
    vets = [r[0] for r in rows]
    types = [r[1] for r in rows]
    m0 = float(lr.mean())
    model.mean_log_ratio = m0

    by_type: dict[str, list[int]] = defaultdict(list)
    by_vet: dict[str, list[int]] = defaultdict(list)
    by_vt: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (vet, t) in enumerate(zip(vets, types, strict=True)):
        by_type[t].append(i)
        by_vet[vet].append(i)
        by_vt[(vet, t)].append(i)

    # Alternate type means and vet speeds a few times so a slow vet who happens to do most
    # of one type does not make that type look long for everyone.
    speed = dict.fromkeys(by_vet, 0.0)
    type_mu: dict[str, float] = {}
    for _ in range(3):
        adj = lr - np.array([speed[v] for v in vets])
        type_mu = {t: float((adj[ix].sum() + K_TYPE * m0) / (len(ix) + K_TYPE)) for t, ix in by_type.items()}
        tm = np.array([type_mu[t] for t in types])
        speed = {v: float((lr[ix] - tm[ix]).sum() / (len(ix) + K_VET)) for v, ix in by_vet.items()}

    tm = np.array([type_mu[t] for t in types])
    sp = np.array([speed[v] for v in vets])
    vt_mu: dict[tuple[str, str], float] = {}
    for (vet, t), ix in by_vt.items():
        prior = type_mu[t] + speed[vet]
        vt_mu[(vet, t)] = float((lr[ix].sum() + K_VET_TYPE * prior) / (len(ix) + K_VET_TYPE))
    mu_i = np.array([vt_mu[(v, t)] for v, t in zip(vets, types, strict=True)])
    resid = lr - mu_i
    sg2 = float(np.mean(resid**2)) if len(resid) > 1 else PRIOR_SIGMA**2
    # Thin histories understate spread; blend with the prior.
    n = len(resid)
    sg2 = (sg2 * n + PRIOR_SIGMA**2 * K_SIGMA) / (n + K_SIGMA)
    model.sigma = math.sqrt(sg2)
    type_sigma = {
        t: math.sqrt((float((resid[ix] ** 2).sum()) + K_SIGMA * sg2) / (len(ix) + K_SIGMA))
        for t, ix in by_type.items()
    }
    z = resid / np.array([type_sigma[t] for t in types])
    if n >= 30:
        model.residuals = _quantiles([float(x) for x in z])
    model.type_mu = type_mu
    model.type_sigma = type_sigma
    model.type_n = {t: len(ix) for t, ix in by_type.items()}
    model.vet_speed = speed
    model.vet_n = {v: len(ix) for v, ix in by_vet.items()}
    model.vet_type_mu = {f"{v}|{t}": m for (v, t), m in vt_mu.items()}
    del sp, tm
    if walk_logs:
        k = 5.0
        wl = np.array(walk_logs)
        prior_mu = math.log(20.0) + m0
        model.walkin_len_mu = float((wl.sum() + k * prior_mu) / (len(wl) + k))
        var = float(((wl - model.walkin_len_mu) ** 2).sum())
        model.walkin_len_sigma = math.sqrt((var + k * 0.45**2) / (len(wl) + k))


def _learn_gaps(model: Model, visits: list[Visit]) -> None:
    """Turnaround between consults, measured only when the next client was already waiting."""
    by_vet_day: dict[tuple[str, str], list[Visit]] = defaultdict(list)
    for v in visits:
        if v.started is not None and v.ended is not None:
            by_vet_day[(v.vet, v.started.date().isoformat())].append(v)
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
    if len(gaps) >= 10:
        model.gaps = _quantiles(gaps)


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
    model.noshow_rate = (noshows + K_NOSHOW * PRIOR_NOSHOW) / (booked + K_NOSHOW)
    if len(late) >= 20:
        model.lateness = _quantiles(late)


def _learn_emergencies(model: Model, visits: list[Visit]) -> None:
    ratios: list[float] = []
    lens: list[float] = []
    for v in visits:
        if v.kind != "emergency":
            continue
        d = _consult_minutes(v)
        if d is None:
            continue
        lens.append(math.log(d))
        if v.expected_min:
            ratios.append(math.log(d / v.expected_min))
    if ratios:
        r = np.array(ratios)
        model.em_ratio_mu = float(r.sum() / (len(r) + K_EMERGENCY))
        var = float(((r - model.em_ratio_mu) ** 2).sum())
        model.em_ratio_sigma = math.sqrt((var + K_EMERGENCY * PRIOR_EM_RATIO_SIGMA**2) / (len(r) + K_EMERGENCY))
    if lens:
        ln = np.array(lens)
        prior = math.log(DEFAULT_EMERGENCY_MIN)
        model.em_len_mu = float((ln.sum() + K_EMERGENCY * prior) / (len(ln) + K_EMERGENCY))
        var = float(((ln - model.em_len_mu) ** 2).sum())
        model.em_len_sigma = math.sqrt((var + K_EMERGENCY * PRIOR_EM_LEN_SIGMA**2) / (len(ln) + K_EMERGENCY))


def _local_hour(t: datetime, offset_min: float | None) -> int:
    if offset_min is not None and t.utcoffset() is not None:
        off = t.utcoffset()
        assert off is not None
        t = t + timedelta(minutes=offset_min) - off
    return t.hour


def _learn_rates(model: Model, visits: list[Visit]) -> None:
    days = max(model.n_days, 1)
    for kind, table, prior_per_day in (
        ("walkin", model.walkin_rate, PRIOR_WALKIN_PER_VET_DAY),
        ("emergency", model.emergency_rate, PRIOR_EMERGENCY_PER_VET_DAY),
    ):
        counts: dict[str, list[float]] = defaultdict(lambda: [0.0] * 24)
        vets: set[str] = set()
        for v in visits:
            vets.add(v.vet)
            if v.kind != kind or v.arrived is None:
                continue
            counts[v.vet][_local_hour(v.arrived, model.utc_offset_min)] += 1.0
        if not vets:
            continue
        # A prior worth a couple of days keeps a short history from saying "never".
        k_days = 2.0
        prior = [prior_per_day / len(OPEN_HOURS) if h in OPEN_HOURS else 0.0 for h in range(24)]
        total = [0.0] * 24
        for vet in vets:
            c = counts[vet]
            table[vet] = [(c[h] + k_days * prior[h]) / (days + k_days) for h in range(24)]
            for h in range(24):
                total[h] += table[vet][h]
        table["*"] = [x / len(vets) for x in total]
