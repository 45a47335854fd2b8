"""When will each waiting or booked client be seen? Pure: state and a time in, estimates out.

`estimate` replays the clinic's dispatch rule (see docs/ARCHITECTURE.md) for each vet,
many times over, with consult lengths, client arrivals, no-shows and the walk-ins and
emergencies still to come drawn from a learned `Model`, and with what today has shown so
far: each vet's pace (their finished consults today against what the model expected) and
today's count of walk-ins and emergencies. The median of the simulated start times is the
estimate; the range is read at the sampled quantiles the model's calibration found to hold
10% and 90% of real starts on the clinic's own past days (`server.calibration`).

Every sample also draws, per vet, how fast that vet runs today, from what we know of it:
today's consults so far, the vet's history, and how sure the history is (a new clinic or a
new vet: not very). That is what keeps the range honest over a long queue: one slow day
moves every consult of that vet, not each on its own.

A clinic with no history at all is told the booked-length answer (one deterministic pass:
every visit lasts its booked length, clients come on time), with the range of the
simulation from the booking's own priors. Without a model at all, a rough range.

All times inside the simulation are float minutes relative to `now`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from .domain import DEFAULT_EMERGENCY_MIN, DayState, Estimate, Visit
from .learning import N_QUANTILES, OPEN_HOURS, Model, erfinv, local_hour

EARLY_START_MIN = 5.0  # nobody is started more than this before their scheduled time
SAMPLES = 256
# Emergencies sort before everyone; a vet's blocked time (a staff meeting) before clients;
# reception's priorities before ordinary clients.
EMERGENCY_KEY = -1e7
BLOCK_KEY = -5e6
PRIORITY_KEY = -1e6
PRIORITY_STEP = 1e4
FUTURE_BIN_MIN = 10.0
MAX_FUTURE_SLOTS = 8
HORIZON_PAD_MIN = 90.0
MAX_HORIZON_MIN = 14 * 60.0
NEW_TYPE_VISITS = 10  # a type with fewer visits in history is still being learned
# The longest queue simulated per vet (see _bounded): far above a real day's.
MAX_QUEUE = 150

_GRID = np.linspace(0.0, 1.0, N_QUANTILES)
FINE = 1024
_FINE = np.linspace(0.0, 1.0, FINE)


@dataclass(slots=True)
class _Queue:
    """One vet's simulation input, vectorised over N samples and K visits."""

    free: np.ndarray  # (N,) when the vet can next start someone
    ready: np.ndarray  # (N, K) earliest start allowed (arrival, 5-min rule); inf = never comes
    key: np.ndarray  # (N, K) dispatch order among the ready (lower first)
    dur: np.ndarray  # (N, K) consult length plus turnaround
    hold: np.ndarray  # (N, K) the vet is busy at least until then once it starts (blocked time); -inf
    floor: np.ndarray  # (K,) earliest start the rules allow, whatever happens
    ids: list[str | None]  # visit id, or None for simulated future arrivals


@dataclass(slots=True)
class Today:
    """What today has shown so far, beyond the queue itself (see `today`)."""

    # vet -> the day's log offset, a two-part posterior (see `today`): (share of an off day,
    # mean and variance on an ordinary day, mean and variance on an off day)
    pace: dict[str, tuple[float, float, float, float, float]]
    # appointment type -> log offset learned today (types with little history), and for such a
    # type "vet|type" -> that vet's own offset at it beyond the type's
    types: dict[str, float]
    type_var: dict[str, float]  # ... and how unsure of each we still are
    rate_factor: dict[str, float]  # "walkin|vet", "emergency|vet" -> today's rate against the usual


def estimate(state: DayState, now: datetime, model: Model | None = None,
             vets: Collection[str] | None = None) -> dict[str, Estimate]:
    """One `Estimate` per pending visit of `state`, as seen at `now`.

    Never earlier than `now`, deterministic for the same input (the random streams are
    seeded from the date of `now` and the vet), no clock reads and no I/O. With `vets`,
    only those vets' visits are estimated, with exactly the numbers a full run gives them
    (each vet's queue is simulated on its own random stream).
    """
    out: dict[str, Estimate] = {}
    if model is None:
        for ids, starts, floor in simulate(state, now, None, vets, n=1):
            p50 = starts[0]
            # No model at all: a rough range that grows with the wait.
            _put(out, ids, now, p50, p50 - 0.1 * p50 - 2.0, p50 + 0.3 * p50 + 5.0, floor)
        return out
    need_booked = any(model.point[g][0] > 0 for g in model.point)
    booked = {vid: p for ids, st, _ in simulate(state, now, None, vets, n=1)
              for vid, p in zip(ids, st[0], strict=True)} if need_booked else {}
    for ids, starts, floor in simulate(state, now, model, vets):
        here = np.array([state.visits[vid].arrived is not None for vid in ids])
        b = np.array([booked.get(vid, 0.0) for vid in ids])
        half = len(starts) // 2
        calm, risky = np.sort(starts[:half], axis=0), np.sort(starts[half:], axis=0)
        pts = np.stack([b, _quantiles(calm, (0.5,))[0], _quantiles(risky, (0.5,))[0]])
        lo_h, hi_h = model.calibration["here"]
        lo_c, hi_c = model.calibration["coming"]
        q = _quantiles(risky, (lo_h, hi_h, lo_c, hi_c))
        lo = np.where(here, q[0], q[2])
        hi = np.where(here, q[1], q[3])
        w_here = np.asarray(model.point["here"])
        w_coming = np.asarray(model.point["coming"])
        p50 = np.where(here, w_here @ pts, w_coming @ pts)
        _put(out, ids, now, p50, lo, hi, floor)
    return out


def points(starts: np.ndarray, booked: np.ndarray) -> np.ndarray:
    """(3, k) candidate starts: the booked-length answer, the median of the samples where
    no unannounced emergency walks in before the client, and the median of those where
    they arrive at the learned rates (the honest predictive distribution, whose quantiles
    make the range). Which mix is told is chosen per clinic on its own past days
    (`Model.point`, `server.calibration`)."""
    half = len(starts) // 2
    return np.stack([booked, np.median(starts[:half], axis=0), np.median(starts[half:], axis=0)])


def _quantiles(ordered: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """(len(levels), k) quantiles of each column of `ordered` (sorted along axis 0), as
    `np.quantile` reads them (linear between order statistics): one sort serves them all."""
    pos = np.asarray(levels) * (len(ordered) - 1)
    below = np.floor(pos).astype(np.intp)
    above = np.minimum(below + 1, len(ordered) - 1)
    frac = (pos - below)[:, None]
    return np.asarray(ordered[below] * (1.0 - frac) + ordered[above] * frac)


def _put(out: dict[str, Estimate], ids: list[str], now: datetime, p50: np.ndarray, lo: np.ndarray,
         hi: np.ndarray, floor: np.ndarray) -> None:
    p50 = np.maximum(p50, floor)
    lo = np.minimum(np.maximum(lo, floor), p50)
    hi = np.maximum(hi, p50)
    for j, vid in enumerate(ids):
        out[vid] = Estimate(
            visit=vid,
            start=now + timedelta(minutes=float(p50[j])),
            p10=now + timedelta(minutes=float(lo[j])),
            p90=now + timedelta(minutes=float(hi[j])),
        )


def simulate(state: DayState, now: datetime, model: Model | None, vets: Collection[str] | None = None,
             n: int = SAMPLES) -> list[tuple[list[str], np.ndarray, np.ndarray]]:
    """Per vet with a pending visit: (visit ids, (n, k) simulated starts in minutes from
    `now`, (k,) earliest start the rules allow). Without a model, one booked-length pass."""
    if model is None:
        n = 1
    hours = _bin_hours(now, model)
    seen = today(state, now, model) if model is not None else None
    by_vet: dict[str, list[Visit]] = {vet: [] for vet in state.vets}
    for v in state.visits.values():
        by_vet.setdefault(v.vet, []).append(v)
    queues: list[_Queue] = []
    for vet, visits in by_vet.items():
        if (vets is not None and vet not in vets) or not any(v.pending for v in visits):
            continue
        # One random stream per vet and day: what happens to one vet's queue cannot shift
        # another's numbers, and consecutive queries reuse the same draws (no jitter).
        rng = np.random.default_rng([now.date().toordinal(), zlib.crc32(vet.encode())])
        queues.append(_build_queue(vet, _bounded(visits), state, now, model, n, rng, hours, seen))
    out = []
    for q, starts in zip(queues, _dispatch_all(queues), strict=True):
        cols = [c for c, vid in enumerate(q.ids) if vid is not None]
        out.append(([str(q.ids[c]) for c in cols], starts[:, cols], np.maximum(q.floor[cols], 0.0)))
    return out


def dispatch_order(state: DayState, now: datetime) -> dict[str, list[str]]:
    """Per vet, the visits still to be seen in the order the dispatch rule takes them at `now`,
    as the booked-length pass plays it (every consult its booked length, everyone booked on
    time): emergencies by arrival, a vet's blocked time, reception's priorities, then booked
    time or arrival, each only once it may start (arrived, and at most EARLY_START_MIN before
    its booking). The order reception's board and the lobby show, so they never disagree with
    the estimator's own rule. Visits past a vet's MAX_QUEUE cut are left out."""
    out: dict[str, list[str]] = {}
    for ids, starts, _ in simulate(state, now, None, n=1):
        ranked = sorted(range(len(ids)), key=lambda j: (math.isnan(starts[0, j]), float(starts[0, j]), j))
        for j in ranked:
            out.setdefault(state.visits[ids[j]].vet, []).append(ids[j])
    return out


def today(state: DayState, now: datetime, model: Model) -> Today:
    """Today's pace per vet and today's walk-in and emergency rates, from what has happened.

    Pace: each finished consult today gives log(actual/expected); a vet's day offset is their
    sum over (count + `model.pace_k`), the prior count learned from how much this clinic's
    vets' days differ. Rates: today's count against what the learned hourly rates expected
    by now, with a Gamma prior worth `model.rate_days` days.
    """
    done: list[tuple[str, str | None, float]] = []  # vet, type, log(actual) - expected
    counts = {(kind, vet): 0.0 for kind in ("walkin", "emergency") for vet in state.vets}
    for v in state.visits.values():
        if v.kind != "appointment" and v.arrived is not None and v.arrived <= now:
            counts[(v.kind, v.vet)] = counts.get((v.kind, v.vet), 0.0) + 1.0
        if v.kind == "emergency" or v.started is None or v.ended is None or v.ended > now:
            continue
        mu, _ = model.duration_mu_sigma(v.vet, v.type, v.booked_min)
        d = max((v.ended - v.started).total_seconds() / 60.0, 0.5)
        done.append((v.vet, v.type, math.log(d) - mu))
    s2 = model.sigma**2
    # A type the clinic has seldom booked is learned from today's consults of it first,
    # weighed against how sure its history makes us (a type never seen: not at all sure).
    by_type: dict[str, list[float]] = {}
    for _vet, typ, e in done:
        if typ is not None:
            by_type.setdefault(typ, []).append(e)
    types, type_var = {}, {}
    for typ, es in by_type.items():
        var_t = model.type_prior_var(typ)
        types[typ] = sum(es) / (len(es) + s2 / var_t)
        type_var[typ] = s2 / (len(es) + s2 / var_t)
    # ... and each vet's own way with it: one vet's slow first dentals say little about
    # another's (a shared type offset alone had the slow vet's next dental expected at the
    # clinic's pace for it, and clients behind it waited past their range).
    by_vet_type: dict[str, list[float]] = {}
    for vet, typ, e in done:
        if typ is not None and model.type_n.get(typ, 0) < NEW_TYPE_VISITS:
            by_vet_type.setdefault(f"{vet}|{typ}", []).append(e - types[typ])
    for key, rs in by_vet_type.items():
        vet, typ = key.split("|", 1)
        var_vt = model.vet_type_prior_var(vet, typ)
        types[key] = sum(rs) / (len(rs) + s2 / var_vt)
        type_var[key] = s2 / (len(rs) + s2 / var_vt)
    sums: dict[str, list[float]] = {}
    for vet, typ, e in done:
        if typ is not None and model.type_n.get(typ, 0) < NEW_TYPE_VISITS:
            # A type the clinic has hardly booked: its consults teach the type (above), not
            # the vet's day; a slow first dental is not a vet's off day.
            continue
        sums.setdefault(vet, []).append(e - types.get(typ or "", 0.0))
    pace = {}
    for vet in set(state.vets) | set(sums):
        es = sums.get(vet, [])
        # The vet's usual is itself uncertain (a new vet, a new clinic): that uncertainty
        # adds to the prior spread of today's offset, and today's consults correct it too.
        var_param = model.duration_uncertainty(vet, None)
        pace[vet] = _pace_posterior(sum(es), len(es), s2, s2 / model.pace_k + var_param,
                                    model.pace_off_var + var_param, model.pace_off_share)
    # Per vet, as arrivals are assigned: one vet's emergency moves only that vet's queue.
    factor = {}
    hour_now = local_hour(now, model.utc_offset_min) + now.minute / 60.0
    h = min(int(hour_now), 23)
    for (kind, vet), c in counts.items():
        rate = model.rate(kind, vet)
        daily = sum(rate)
        beta = model.rate_days.get(kind, 1.0)
        if daily <= 0:
            # Never seen at this clinic: today's own count, over the open hours so far.
            open_so_far = min(max(hour_now - OPEN_HOURS.start, 0.0), len(OPEN_HOURS)) / len(OPEN_HOURS)
            factor[f"{kind}|{vet}"] = c / (beta + open_so_far)  # per day, spread flat (`_future_arrivals`)
            continue
        frac = (sum(rate[:h]) + rate[h] * (hour_now - h)) / daily
        factor[f"{kind}|{vet}"] = (beta + c / daily) / (beta + frac)
    return Today(pace=pace, types=types, type_var=type_var, rate_factor=factor)


def _pace_posterior(total: float, n: int, s2: float, var_day: float, var_off: float,
                    share_off: float) -> tuple[float, float, float, float, float]:
    """Posterior of a vet's day offset from `n` consults summing to `total` (log residuals
    of spread `s2`), under a prior that is a mixture: an ordinary day (spread `var_day`,
    learned from the clinic's history) or, with probability `share_off`, an off day (spread
    `var_off`). A couple of ordinary consults move little; a run of consults at twice their
    length is evidence of an off day and is followed at once."""
    out = []
    log_like = []
    for var in (var_day, var_off):
        k = s2 / var
        mean = total / (n + k)
        out.append((mean, s2 / (n + k)))
        # Marginal likelihood of the observed mean under this prior.
        v_obs = var + s2 / max(n, 1)
        ebar = total / max(n, 1)
        log_like.append(-0.5 * (ebar * ebar / v_obs + math.log(v_obs)) if n else 0.0)
    a = math.log(1.0 - share_off) + log_like[0]
    b = math.log(share_off) + log_like[1]
    w_off = 1.0 / (1.0 + math.exp(min(a - b, 700.0)))
    return w_off, out[0][0], out[0][1], out[1][0], out[1][1]


def _bounded(visits: list[Visit]) -> list[Visit]:
    """A vet's visits with the queue cut to its first MAX_QUEUE in dispatch order: the
    simulation's cost grows with the square of a queue (1,930 bookings for one vet took 48 s),
    and no vet sees more than a few dozen clients a day. Those past the cut get no estimate
    (the pages show none, and no text is decided for them) until the queue shortens."""
    queue = [v for v in visits if v.started is None and not v.noshow]
    if len(queue) <= MAX_QUEUE:
        return visits
    far = math.inf

    def order(v: Visit) -> tuple[int, float, int, float]:
        when = v.scheduled or v.arrived
        return (0 if v.kind == "emergency" else 1, far if v.priority is None else v.priority,
                0 if v.arrived is not None else 1, when.timestamp() if when is not None else far)

    kept = {id(v) for v in sorted(queue, key=order)[:MAX_QUEUE]}
    return [v for v in visits if v.started is not None or v.noshow or id(v) in kept]


def _rel(t: datetime, now: datetime) -> float:
    return (t - now).total_seconds() / 60.0


def _bin_hours(now: datetime, model: Model | None) -> np.ndarray:
    """Local clock hour of each future-arrival bin, from now to the end of the horizon."""
    if model is None:
        return np.empty(0, dtype=int)
    n_bins = int(MAX_HORIZON_MIN / FUTURE_BIN_MIN)
    local = now
    off = now.utcoffset()
    if model.utc_offset_min is not None and off is not None:
        local = now + timedelta(minutes=model.utc_offset_min) - off  # as `local_hour` reads it
    minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60.0
    mids = minute + FUTURE_BIN_MIN * (np.arange(n_bins) + 0.5)
    return np.asarray((mids // 60).astype(int) % 24)


# -- sampling helpers -------------------------------------------------------------------


_TABLES: dict[tuple[float, ...], np.ndarray] = {}


def _table(q: list[float]) -> np.ndarray:
    """A quantile list resampled on a fine uniform grid, so drawing is one gather. Kept: a
    model's few lists are drawn from on every query."""
    k = tuple(q)
    t = _TABLES.get(k)
    if t is None:
        if len(_TABLES) >= 64:
            _TABLES.clear()
        t = _TABLES[k] = np.asarray(np.interp(_FINE, _GRID, np.asarray(q)))
    return t


def _draw(table: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw for uniforms `u` in [0, 1) from a `_table`."""
    return table[(u * (FINE - 1) + 0.5).astype(np.intp)]


def _z(model: Model, u: np.ndarray) -> np.ndarray:
    """Standardised residuals drawn from the clinic's own residual distribution."""
    return _draw(_table(model.residuals), u)


def _sample_gap(model: Model, rng: np.random.Generator, shape: int | tuple[int, int]) -> np.ndarray:
    return _draw(_table(model.gaps), rng.random(shape))


def _mu_sigma(model: Model, v: Visit, seen: Today | None = None) -> tuple[float, float]:
    """Log-minutes location and spread of this visit's consult, today's pace aside. The
    spread includes how unsure we are of this vet's figure for this type (a type the clinic
    has never booked: the whole between-type spread)."""
    if v.kind == "emergency":
        return model.emergency_mu_sigma(v.expected_min)
    mu, sigma = model.duration_mu_sigma(v.vet, v.type, v.booked_min)
    extra = model.duration_uncertainty(v.vet, v.type) - model.duration_uncertainty(v.vet, None)
    if seen is not None and v.type is not None and v.type in seen.types:
        # Today's consults of this type have taught us some of what history had not.
        mu += seen.types[v.type]
        extra += seen.type_var[v.type] - model.type_prior_var(v.type)
        key = f"{v.vet}|{v.type}"
        if key in seen.types:  # ... and this vet's own of them, about this vet
            mu += seen.types[key]
            extra += seen.type_var[key] - model.vet_type_prior_var(v.vet, v.type)
    return mu, math.sqrt(sigma * sigma + max(extra, 0.0))


_erfc = np.vectorize(math.erfc, otypes=[float])


def _sample_remaining(model: Model, v: Visit, elapsed: float, shift: np.ndarray,
                      rng: np.random.Generator, seen: Today | None = None) -> np.ndarray:
    """Time left in a consult already `elapsed` minutes long: the learned length
    distribution (moved by `shift`, the sample's pace for this vet) truncated at `elapsed`,
    so a consult that has run long is expected to run on rather than to end at once."""
    mu0, sigma = _mu_sigma(model, v, seen)
    mu = mu0 + shift
    n = len(shift)
    # Log-normal rather than the empirical residual pool here: the pool ends at the
    # longest consult seen, which would make a long overrun look nearly over.
    z_e = (math.log(max(elapsed, 0.1)) - mu) / sigma
    tail = 0.5 * _erfc(z_e / math.sqrt(2.0))  # P(longer than elapsed)
    u = 1.0 - tail * rng.random(n)  # uniform over the part of the distribution still possible
    z = np.sqrt(2.0) * erfinv(np.minimum(2.0 * u - 1.0, 1.0 - 1e-12))
    total = np.exp(mu + sigma * np.maximum(z, z_e))
    rem = np.maximum(total - elapsed, 0.0)
    # Beyond anything the model expects: assume a short memoryless overrun.
    over = rng.exponential(np.maximum(2.0, 0.15 * np.exp(mu)))
    return np.asarray(np.where(tail < 1e-6, over, rem))


def _sample_arrivals(
    model: Model, sched: np.ndarray, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, m) arrival times (relative to now) and no-show flags for booked clients not yet here.

    Conditioned on not having arrived by now: the later it gets past their time, the
    likelier a no-show: P(no-show | not here) = p / (p + (1 - p) S(late)), S the
    survival of the learned lateness.
    """
    late_q = np.asarray(model.lateness)
    already = -sched  # minutes past their time (negative: not due yet)
    u_e = np.interp(already, late_q, _GRID)  # share of comers already here by now
    surv = 1.0 - u_e
    beyond = surv < 0.01
    # Past everything history shows: keep a thin, fading tail rather than zero.
    surv = np.where(beyond, 0.01 * np.exp(-np.maximum(already - late_q[-1], 0.0) / 10.0), surv)
    p = model.noshow_rate
    p_ns = p / (p + (1.0 - p) * surv)
    m = len(sched)
    noshow = rng.random((n, m)) < p_ns
    u = u_e + (1.0 - u_e) * rng.random((n, m))
    arrival = sched + _draw(_table(model.lateness), u)
    arrival = np.where(beyond, rng.exponential(5.0, (n, m)), np.maximum(arrival, 0.0))
    return arrival, noshow


def _future_arrivals(
    model: Model, kind: str, vet: str, hours: np.ndarray, horizon: float, rng: np.random.Generator, n: int,
    factor: float,
) -> np.ndarray:
    """(n, slots) arrival times of walk-ins or emergencies still to come; inf = none.
    `factor`: today's rate against the learned one (see `today`)."""
    n_bins = min(len(hours), int(math.ceil(horizon / FUTURE_BIN_MIN)))
    if n_bins == 0:
        return np.empty((n, 0))
    rate = np.asarray(model.rate(kind, vet))
    if not rate.any():
        # Never seen at this clinic: `factor` is today's own count per day, spread flat.
        rate = np.array([factor / len(OPEN_HOURS) if h in OPEN_HOURS else 0.0 for h in range(24)])
    else:
        rate = rate * factor
    lam = rate[hours[:n_bins]] * (FUTURE_BIN_MIN / 60.0)
    total = float(lam.sum())
    if total < 1e-3:
        return np.empty((n, 0))
    slots = min(MAX_FUTURE_SLOTS, int(total + 4.0 * math.sqrt(total) + 2.0))
    cum = np.concatenate(([0.0], np.cumsum(lam)))
    edges = FUTURE_BIN_MIN * np.arange(n_bins + 1)
    times = np.interp(rng.random((n, slots)) * total, cum, edges)
    count = rng.poisson(total, n)
    times[np.arange(slots)[None, :] >= count[:, None]] = np.inf
    return np.asarray(times)


# -- building and running one vet's queue ----------------------------------------------


@dataclass(slots=True)
class _Item:
    vid: str | None  # None: not owed an estimate (never happens for known visits today)
    ready: float  # known earliest start; nan = a booked client still to arrive
    sched: float  # scheduled time (nan for walk-ins and emergencies)
    key: float
    mu: float
    sigma: float
    fixed_len: float  # booked-length fallback
    emergency: bool
    hold: float = -math.inf  # blocked time: its end (the vet is back then, however late it began)


def _items(vet: str, visits: list[Visit], now: datetime, model: Model | None,
           seen: Today | None) -> tuple[list[_Item], list[Visit]]:
    """The visits still to be seen by this vet, and the consults in progress."""
    items: list[_Item] = []
    running: list[Visit] = []
    priorities = sorted({v.priority for v in visits if v.priority is not None})
    # A consult's length distribution depends on these fields of the visit only (`_mu_sigma`):
    # a vet's queue has a few kinds of visit, each looked up once.
    known: dict[tuple[str, str, str | None, float, float | None], tuple[float, float]] = {}
    for v in visits:
        if v.in_consult:
            running.append(v)
            continue
        if v.started is not None or v.noshow:
            continue
        if v.kind != "appointment" and v.arrived is None:
            continue  # a walk-in or emergency we have not seen yet is not in the queue
        ready = _rel(v.arrived, now) if v.arrived is not None else math.nan
        sched = _rel(v.scheduled, now) if v.scheduled is not None else math.nan
        if v.kind == "emergency":
            key = EMERGENCY_KEY + max(ready, 0.0)
        else:
            key = sched if v.scheduled is not None else ready
            if v.priority is not None:
                key += PRIORITY_KEY + PRIORITY_STEP * priorities.index(v.priority)
        if model is None:
            mu, sigma = 0.0, 0.0
        else:
            what = (v.kind, v.vet, v.type, v.booked_min, v.expected_min)
            found = known.get(what)
            if found is None:
                found = known[what] = _mu_sigma(model, v, seen)
            mu, sigma = found
        fixed = v.booked_min if v.kind != "emergency" else (v.expected_min or DEFAULT_EMERGENCY_MIN)
        items.append(_Item(v.id if v.pending else None, ready, sched, key, mu, sigma, float(fixed),
                           v.kind == "emergency"))
    return items, running


def _block_items(blocks: list[tuple[datetime, datetime]], now: datetime) -> list[_Item]:
    """A vet's blocked time still to come or under way, as visits of no length that keep the
    vet until their end: taken once the vet is free (after a waiting emergency), never
    interrupting a consult, and nobody started inside them."""
    out = []
    for start, end in blocks:
        if end > now:
            s = max(_rel(start, now), 0.0)
            out.append(_Item(None, s, math.nan, BLOCK_KEY + s, 0.0, 0.0, 0.0, False, _rel(end, now)))
    return out


def _build_queue(
    vet: str,
    visits: list[Visit],
    state: DayState,
    now: datetime,
    model: Model | None,
    n: int,
    rng: np.random.Generator,
    hours: np.ndarray,
    seen: Today | None,
) -> _Queue:
    items, running = _items(vet, visits, now, model, seen)
    items += _block_items(state.blocks.get(vet, []), now)
    k = len(items)
    free = np.zeros(n)
    if vet in state.vet_unavailable_until:
        free = np.maximum(free, _rel(state.vet_unavailable_until[vet], now))
    sched = np.array([it.sched for it in items])
    ready = np.array([it.ready for it in items])
    key = np.array([it.key for it in items])
    hold = np.array([it.hold for it in items])
    blocked = np.isfinite(hold)
    if model is None:
        for v in running:
            assert v.started is not None
            length = v.booked_min if v.kind != "emergency" else (v.expected_min or DEFAULT_EMERGENCY_MIN)
            free = np.maximum(free, length + _rel(v.started, now))
        # Booked-length fallback: everyone comes on time.
        r = np.where(np.isnan(ready), sched, ready)[None, :]
        dur = np.array([it.fixed_len for it in items])[None, :]
        keys = key[None, :]
    else:
        assert seen is not None
        # How fast this vet runs today, in this sample: one draw for all their consults.
        w_off, m_day, v_day, m_off, v_off = seen.pace.get(
            vet, (model.pace_off_share, 0.0, model.sigma**2 / model.pace_k, 0.0, model.pace_off_var))
        off = rng.random(n) < w_off
        shift = np.where(off, m_off, m_day) + np.sqrt(np.where(off, v_off, v_day)) * rng.standard_normal(n)
        for v in running:
            assert v.started is not None
            sh = shift if v.kind != "emergency" else np.zeros(n)
            rem = _sample_remaining(model, v, -_rel(v.started, now), sh, rng, seen) + _sample_gap(model, rng, n)
            free = np.maximum(free, rem)
        r = np.broadcast_to(ready, (n, k)).copy()
        todo = np.flatnonzero(np.isnan(ready))
        ghost = np.zeros((n, k), dtype=bool)
        if len(todo):
            r[:, todo], ghost[:, todo] = _sample_arrivals(model, sched[todo], rng, n)
        mu = np.array([it.mu for it in items])
        sigma = np.array([it.sigma for it in items])
        is_em = np.array([it.emergency for it in items], dtype=bool)
        sh = np.where(is_em[None, :], 0.0, shift[:, None])
        dur = np.exp(mu + sh + sigma * _z(model, rng.random((n, k)))) + _sample_gap(model, rng, (n, k))
        # A no-show is kept as a zero-length "ghost": it never holds the vet up, yet its
        # own start is still simulated as if it came (that is what we are asked for).
        dur = np.where(ghost | blocked, 0.0, dur)
        keys = np.broadcast_to(key, (n, k))
        # Emergencies are seen in order of arrival; the key was fixed from their arrival.
    r = np.where(np.isnan(sched), r, np.maximum(r, sched - EARLY_START_MIN))
    r = np.maximum(r, 0.0)
    holds = np.broadcast_to(hold, r.shape)
    ids: list[str | None] = [it.vid for it in items]
    if model is not None and k:
        horizon = float(np.nanmax(np.concatenate([sched, [0.0]]))) + HORIZON_PAD_MIN
        extra_r, extra_k, extra_d = [], [], []
        for kind in ("walkin", "emergency"):
            assert seen is not None
            t = _future_arrivals(model, kind, vet, hours, horizon, rng, n, seen.rate_factor.get(f"{kind}|{vet}", 1.0))
            m = t.shape[1]
            if not m:
                continue
            extra_r.append(t)
            if kind == "walkin":
                extra_k.append(t)
                mu_w = model.walkin_len_mu + model.vet_speed.get(vet, 0.0) + shift[:, None]
                d = np.exp(mu_w + model.walkin_len_sigma * _z(model, rng.random((n, m))))
            else:
                # The first half of the samples sees no unannounced emergency (see `points`).
                t[: n // 2] = np.inf
                extra_k.append(EMERGENCY_KEY + t)
                d = np.exp(model.em_len_mu + model.em_len_sigma * _z(model, rng.random((n, m))))
            extra_d.append(d + _sample_gap(model, rng, (n, m)))
            ids.extend([None] * m)
        if extra_r:
            r = np.concatenate([r, *extra_r], axis=1)
            keys = np.concatenate([keys, *extra_k], axis=1)
            dur = np.concatenate([dur, *extra_d], axis=1)
            holds = np.concatenate([holds, np.full((r.shape[0], r.shape[1] - k), -np.inf)], axis=1)
    floor = np.maximum(np.nan_to_num(np.fmax(ready, sched - EARLY_START_MIN), nan=0.0), 0.0)
    if vet in state.vet_unavailable_until:
        floor = np.maximum(floor, _rel(state.vet_unavailable_until[vet], now))
    for start, end in sorted(state.blocks.get(vet, [])):
        # Whoever can start no earlier than inside blocked time can start no earlier than its end.
        floor = np.where((floor >= _rel(start, now)) & (floor < _rel(end, now)), _rel(end, now), floor)
    floor = np.concatenate([floor, np.zeros(len(ids) - k)])
    return _Queue(free=free, ready=r, key=keys, dur=dur, hold=holds, floor=floor, ids=ids)


def _dispatch_all(queues: list[_Queue]) -> list[np.ndarray]:
    """Dispatch every vet's queue in one vectorised run (vets stacked as extra samples,
    padded with never-arriving visits), so numpy's per-call overhead is paid once."""
    if not queues:
        return []
    width = max(q.ready.shape[1] for q in queues)
    rows = sum(q.ready.shape[0] for q in queues)
    # One block per field, filled vet by vet (padding: visits that never arrive).
    ready = np.full((rows, width), np.inf)
    key = np.full((rows, width), np.inf)
    dur = np.zeros((rows, width))
    hold = np.full((rows, width), -np.inf)
    owed = np.zeros((rows, width), dtype=bool)
    row = 0
    for q in queues:
        n, k = q.ready.shape
        ready[row : row + n, :k] = q.ready
        key[row : row + n, :k] = q.key
        dur[row : row + n, :k] = q.dur
        hold[row : row + n, :k] = q.hold
        owed[row : row + n, :k] = np.array([vid is not None for vid in q.ids], dtype=bool)
        row += n
    stacked = _Queue(free=np.concatenate([q.free for q in queues]), ready=ready, key=key, dur=dur, hold=hold,
                     floor=np.zeros(width), ids=[])
    starts = _dispatch(stacked, owed)
    out, row = [], 0
    for q in queues:
        n, k = q.ready.shape
        out.append(starts[row : row + n, :k])
        row += n
    return out


# Up to this many rows x columns (the booked-length pass of an ordinary day: one row per vet, a
# few dozen visits each) are dispatched row by row in plain Python (`_dispatch_rows`): numpy's
# cost per call, paid at every step, is most of such a run. Python's cost grows with the square
# of a row's length, so a long queue (a day at the cap: 150 per vet) stays vectorised.
FEW_CELLS = 400


def _dispatch(q: _Queue, owed: np.ndarray) -> np.ndarray:
    """Run the dispatch rule on every sample at once; (N, K) start times (nan = never)."""
    n, k = q.ready.shape
    if n * k <= FEW_CELLS and not (np.isnan(q.ready).any() or np.isnan(q.key).any() or np.isnan(q.dur).any()
                              or np.isnan(q.hold).any() or np.isnan(q.free).any()):
        return _dispatch_rows(q, owed)
    return _dispatch_arrays(q, owed)


def _dispatch_arrays(q: _Queue, owed: np.ndarray) -> np.ndarray:
    """`_dispatch` vectorised over the rows: one step of every row per numpy call.

    Laid out visits by samples (the transpose of the inputs), so each step's scans run along
    memory over the samples, and with each row's visits ranked once by dispatch key (stable:
    on a tie the earlier column, as an argmin over the keys takes it): the visit a step takes
    is the lowest rank among the ready, a minimum rather than an argmin.
    """
    n, k = q.ready.shape
    order = np.argsort(q.key, axis=1, kind="stable")  # (N, K): rank -> column
    rank = np.empty((n, k), dtype=np.intp)  # (N, K): column -> rank
    np.put_along_axis(rank, order, np.arange(k)[None, :], axis=1)
    rdy_t = q.ready.T.copy()  # (K', N') set to inf once dispatched
    # Small integers: the step's scan moves a quarter of the bytes (a vet's queue is cut at
    # MAX_QUEUE visits, plus a few simulated arrivals: far below 32,767).
    small = np.int16 if k < np.iinfo(np.int16).max else np.intp
    rank_t = rank.T.astype(small)
    never = small(k)
    dur, hold = q.dur, q.hold  # (N', K) by original column
    n_owed = owed.sum(axis=1)  # (N,) visits owed an estimate in each row
    done = np.zeros(n, dtype=np.intp)
    free = q.free.copy()
    orig = np.arange(n)  # original row of each row still in play
    rows = np.arange(n)
    at = np.arange(k)  # where each original column is in rdy_t (its rows shrink)
    at_rows: list[np.ndarray] = []
    at_cols: list[np.ndarray] = []
    at_t: list[np.ndarray] = []
    for step in range(k):
        if step and step % 4 == 0:
            # Simulated future arrivals only matter while someone owed an estimate still waits:
            # drop the rows (samples of a vet) that have started all theirs, and the columns
            # every row has dispatched. Each step then scans less.
            keep = done < n_owed
            if not keep.all():
                rdy_t, rank_t = rdy_t[:, keep], rank_t[:, keep]
                dur, hold, owed, order = dur[keep], hold[keep], owed[keep], order[keep]
                free, done, n_owed, orig = free[keep], done[keep], n_owed[keep], orig[keep]
                rows = np.arange(len(orig))
            alive = np.isfinite(rdy_t).any(axis=1)
            if not alive.all():
                cols = np.flatnonzero(at >= 0)[alive]
                rdy_t, rank_t = rdy_t[alive], rank_t[alive]
                at = np.full(k, -1)
                at[cols] = np.arange(len(cols))
        if (done >= n_owed).all() or not len(rdy_t):
            break
        nxt = rdy_t.min(axis=0)
        active = np.isfinite(nxt)
        # An idle vet waits for the next client to become ready; a busy one does not.
        t = np.where(active, np.maximum(free, nxt), free)
        best = np.where(rdy_t <= t, rank_t, never).min(axis=0)
        idx = order[rows, np.minimum(best, k - 1)]  # original column (rows not active: unused)
        r, c = rows[active], idx[active]
        at_rows.append(orig[r])
        at_cols.append(c)
        at_t.append(t[active])
        free = np.where(active, np.maximum(t + dur[rows, idx], hold[rows, idx]), free)
        rdy_t[at[c], r] = np.inf
        done += active & owed[rows, idx]
    start = np.full((n, k), np.nan)
    if at_t:
        start[np.concatenate(at_rows), np.concatenate(at_cols)] = np.concatenate(at_t)
    return start


def _dispatch_rows(q: _Queue, owed: np.ndarray) -> np.ndarray:
    """`_dispatch` for a few rows without NaNs, one row at a time: the same rule and the same
    float operations, so the same starts (tests/test_estimator.py holds the two together).
    A row's columns that are not owed an estimate may be left unstarted once every owed
    one has started (nobody reads them)."""
    n, k = q.ready.shape
    start = np.full((n, k), np.nan)
    inf = math.inf
    for i in range(n):
        rdy: list[float] = q.ready[i].tolist()
        key: list[float] = q.key[i].tolist()
        dur: list[float] = q.dur[i].tolist()
        hold: list[float] = q.hold[i].tolist()
        mine: list[bool] = owed[i].tolist()
        left = sum(mine)
        free = float(q.free[i])
        row = start[i]
        for _ in range(k):
            if left <= 0:
                break
            nxt = min(rdy)
            if not math.isfinite(nxt):
                break  # nobody else ever comes
            # An idle vet waits for the next client to become ready; a busy one does not.
            t = free if free >= nxt else nxt
            # The lowest key among the ready (the first such column on a tie), as an argmin
            # over the keys with the not-yet-ready set to inf takes it.
            j = 0
            best = key[0] if rdy[0] <= t else inf
            for c in range(1, k):
                if rdy[c] <= t and key[c] < best:
                    best, j = key[c], c
            row[j] = t
            end = t + dur[j]
            free = end if end >= hold[j] else hold[j]
            rdy[j] = inf
            left -= mine[j]
    return start
