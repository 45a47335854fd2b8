"""When will each waiting or booked client be seen? Pure: state and a time in, estimates out.

`estimate` replays the clinic's dispatch rule (see docs/ARCHITECTURE.md) for each vet,
many times over, with consult lengths, client arrivals, no-shows and the walk-ins and
emergencies still to come drawn from a learned `Model`. The median of the simulated
start times is the estimate, the 10th and 90th percentiles its range. Without a model it
falls back to one deterministic pass with booked lengths (the "first estimator").

All times inside the simulation are float minutes relative to `now`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from .domain import DEFAULT_EMERGENCY_MIN, DayState, Estimate, Visit
from .learning import N_QUANTILES, Model, _local_hour

EARLY_START_MIN = 5.0  # nobody is started more than this before their scheduled time
SAMPLES = 256
# Emergencies sort before everyone; reception's priorities before ordinary clients.
EMERGENCY_KEY = -1e7
PRIORITY_KEY = -1e6
PRIORITY_STEP = 1e4
# The simulated spread misses what the model itself gets wrong (a vet's off day, a
# wrongly learned mean); widen the sampled range a little to keep ~80% coverage.
WIDEN_LOW = 1.1
WIDEN_HIGH = 1.25
FUTURE_BIN_MIN = 10.0
MAX_FUTURE_SLOTS = 8
HORIZON_PAD_MIN = 90.0

_GRID = np.linspace(0.0, 1.0, N_QUANTILES)


@dataclass(slots=True)
class _Queue:
    """One vet's simulation input, vectorised over samples."""

    free: np.ndarray  # (N,) when the vet can next start someone
    ready: list[np.ndarray]  # each (N,): earliest start allowed (arrival, 5-min rule)
    key: list[np.ndarray]  # each (N,): dispatch order among the ready
    dur: list[np.ndarray]  # each (N,): consult length plus turnaround
    ids: list[str | None]  # visit id, or None for simulated future arrivals


def estimate(state: DayState, now: datetime, model: Model | None = None) -> dict[str, Estimate]:
    """One `Estimate` per pending visit of `state`, as seen at `now`.

    Never earlier than `now`, deterministic for the same input (the random stream is
    seeded from the date of `now`, so consecutive queries share random numbers and the
    shown estimates do not jitter), no clock reads and no I/O.
    """
    n = SAMPLES if model is not None else 1
    rng = np.random.default_rng(now.date().toordinal())
    out: dict[str, Estimate] = {}
    vets = list(dict.fromkeys([*state.vets, *(v.vet for v in state.visits.values())]))
    for vet in vets:
        visits = [v for v in state.visits.values() if v.vet == vet]
        if not any(v.pending for v in visits):
            continue
        q = _build_queue(vet, visits, state, now, model, n, rng)
        starts = _dispatch(q)
        for k, vid in enumerate(q.ids):
            if vid is None:
                continue
            out[vid] = _summarise(vid, starts[:, k], now, model is not None)
    return out


def _summarise(vid: str, s: np.ndarray, now: datetime, spread: bool) -> Estimate:
    if spread:
        p10, p50, p90 = (float(x) for x in np.quantile(s, (0.1, 0.5, 0.9)))
        lo = p50 - WIDEN_LOW * (p50 - p10)
        hi = p50 + WIDEN_HIGH * (p90 - p50)
    else:
        # Booked-length fallback: no spread to sample, so a rough range that grows with
        # the wait (the further ahead, the more can go wrong; lateness dominates).
        p50 = float(s[0])
        lo = p50 - 0.1 * p50 - 2.0
        hi = p50 + 0.3 * p50 + 5.0
    p50 = max(p50, 0.0)
    lo = min(max(lo, 0.0), p50)
    hi = max(hi, p50)
    return Estimate(
        visit=vid,
        start=now + timedelta(minutes=p50),
        p10=now + timedelta(minutes=lo),
        p90=now + timedelta(minutes=hi),
    )


def _rel(t: datetime, now: datetime) -> float:
    return (t - now).total_seconds() / 60.0


# -- sampling helpers -------------------------------------------------------------------


def _z(model: Model, u: np.ndarray) -> np.ndarray:
    """Standardised residuals drawn from the clinic's own residual distribution."""
    return np.interp(u, _GRID, np.asarray(model.residuals))


def _sample_gap(model: Model, rng: np.random.Generator, n: int) -> np.ndarray:
    return np.interp(rng.random(n), _GRID, np.asarray(model.gaps))


def _sample_consult(model: Model, v: Visit, rng: np.random.Generator, n: int) -> np.ndarray:
    mu, sigma = _mu_sigma(model, v)
    return np.exp(mu + sigma * _z(model, rng.random(n)))


def _mu_sigma(model: Model, v: Visit) -> tuple[float, float]:
    if v.kind == "emergency":
        if v.expected_min:
            return math.log(v.expected_min) + model.em_ratio_mu, model.em_ratio_sigma
        return model.em_len_mu, model.em_len_sigma
    return model.duration_mu_sigma(v.vet, v.type, v.booked_min)


def _sample_remaining(model: Model, v: Visit, elapsed: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """Time left in a consult already `elapsed` minutes long: the learned length
    distribution truncated at `elapsed`, so a consult that has run long is expected to
    run on rather than to end at its unconditional mean."""
    mu, sigma = _mu_sigma(model, v)
    res = np.asarray(model.residuals)
    z_e = (math.log(max(elapsed, 0.1)) - mu) / sigma
    u_e = float(np.interp(z_e, res, _GRID)) if z_e > res[0] else 0.0
    if u_e >= 0.98:
        # Beyond what history shows: assume a short memoryless overrun.
        scale = max(2.0, 0.15 * math.exp(mu))
        return rng.exponential(scale, n)
    u = u_e + (1.0 - u_e) * rng.random(n)
    total = np.exp(mu + sigma * _z(model, u))
    return np.maximum(total - elapsed, 0.0)


def _lateness_survival(model: Model, minutes_late: float) -> float:
    """P(a client who will come arrives later than `minutes_late` after their time)."""
    late = np.asarray(model.lateness)
    if minutes_late >= late[-1]:
        # Past everything history shows: keep a thin, fading tail rather than zero.
        return 0.01 * math.exp(-(minutes_late - late[-1]) / 10.0)
    return max(1.0 - float(np.interp(minutes_late, late, _GRID)), 0.01)


def _sample_arrival(
    model: Model, v: Visit, now: datetime, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Arrival time (relative to now) and no-show flag for a booked client not yet here.

    Conditioned on not having arrived by now: the later it gets, the likelier a no-show
    (P(no-show | not here at t) = p / (p + (1-p) S(t)) with S the lateness survival).
    """
    assert v.scheduled is not None
    sched = _rel(v.scheduled, now)
    already_late = -sched  # minutes past their time
    late = np.asarray(model.lateness)
    surv = _lateness_survival(model, already_late)
    p = model.noshow_rate
    p_ns = p / (p + (1.0 - p) * surv)
    noshow = rng.random(n) < p_ns
    if already_late >= late[-1] or surv <= 0.011:
        arrival = rng.exponential(5.0, n)
    else:
        u_e = float(np.interp(already_late, late, _GRID)) if already_late > late[0] else 0.0
        u = u_e + (1.0 - u_e) * rng.random(n)
        arrival = np.maximum(sched + np.interp(u, _GRID, late), 0.0)
    return arrival, noshow


def _future_arrivals(
    model: Model, kind: str, vet: str, now: datetime, horizon: float, rng: np.random.Generator, n: int
) -> np.ndarray:
    """(n, slots) arrival times of walk-ins or emergencies still to come; inf = none."""
    rate = model.rate(kind, vet)
    edges = np.arange(0.0, horizon + FUTURE_BIN_MIN, FUTURE_BIN_MIN)
    lam = np.array([
        rate[_local_hour(now + timedelta(minutes=float(t)), model.utc_offset_min)] * FUTURE_BIN_MIN / 60.0
        for t in edges[:-1]
    ])
    total = float(lam.sum())
    if total < 1e-3:
        return np.empty((n, 0))
    slots = min(MAX_FUTURE_SLOTS, int(total + 4.0 * math.sqrt(total) + 2.0))
    cum = np.concatenate(([0.0], np.cumsum(lam)))
    times = np.interp(rng.random((n, slots)) * total, cum, edges)
    count = rng.poisson(total, n)
    times[np.arange(slots)[None, :] >= count[:, None]] = np.inf
    return times


# -- building and running one vet's queue ----------------------------------------------


def _build_queue(
    vet: str,
    visits: list[Visit],
    state: DayState,
    now: datetime,
    model: Model | None,
    n: int,
    rng: np.random.Generator,
) -> _Queue:
    free = np.zeros(n)
    if vet in state.vet_unavailable_until:
        free = np.maximum(free, _rel(state.vet_unavailable_until[vet], now))
    q = _Queue(free=free, ready=[], key=[], dur=[], ids=[])
    priorities = sorted({v.priority for v in visits if v.priority is not None})
    horizon = 0.0
    for v in visits:
        if v.in_consult:
            assert v.started is not None
            elapsed = -_rel(v.started, now)
            if model is None:
                length = v.booked_min if v.kind != "emergency" else (v.expected_min or DEFAULT_EMERGENCY_MIN)
                rem = np.full(n, max(length - elapsed, 0.0))
            else:
                rem = _sample_remaining(model, v, elapsed, rng, n) + _sample_gap(model, rng, n)
            q.free = np.maximum(q.free, rem)
            continue
        if v.started is not None or v.noshow:
            continue
        if v.kind != "appointment" and v.arrived is None:
            continue  # a walk-in or emergency we have not seen yet is not in the queue
        ghost = np.zeros(n, dtype=bool)
        if v.arrived is not None:
            ready = np.full(n, _rel(v.arrived, now))
        elif model is None:
            assert v.scheduled is not None
            ready = np.full(n, _rel(v.scheduled, now))
        else:
            ready, ghost = _sample_arrival(model, v, now, rng, n)
        if v.scheduled is not None:
            ready = np.maximum(ready, _rel(v.scheduled, now) - EARLY_START_MIN)
            horizon = max(horizon, _rel(v.scheduled, now))
        ready = np.maximum(ready, 0.0)
        if v.kind == "emergency":
            key = EMERGENCY_KEY + ready
        else:
            base = v.scheduled or v.arrived
            assert base is not None
            key = np.full(n, _rel(base, now))
            if v.priority is not None:
                key = key + PRIORITY_KEY + PRIORITY_STEP * priorities.index(v.priority)
        if model is None:
            length = v.booked_min if v.kind != "emergency" else (v.expected_min or DEFAULT_EMERGENCY_MIN)
            dur = np.full(n, float(length))
        else:
            # A no-show is kept as a zero-length "ghost": it never holds the vet up, yet its
            # own start is still simulated as if it came (that is what we are asked for).
            dur = np.where(ghost, 0.0, _sample_consult(model, v, rng, n) + _sample_gap(model, rng, n))
        q.ready.append(ready)
        q.key.append(key)
        q.dur.append(dur)
        q.ids.append(v.id if v.pending else None)
    if model is not None:
        horizon = max(horizon, 0.0) + HORIZON_PAD_MIN
        walk = _future_arrivals(model, "walkin", vet, now, horizon, rng, n)
        for j in range(walk.shape[1]):
            t = walk[:, j]
            q.ready.append(t)
            q.key.append(t)
            q.dur.append(np.exp(model.walkin_len_mu + model.vet_speed.get(vet, 0.0)
                                + model.walkin_len_sigma * _z(model, rng.random(n)))
                         + _sample_gap(model, rng, n))
            q.ids.append(None)
        em = _future_arrivals(model, "emergency", vet, now, horizon, rng, n)
        for j in range(em.shape[1]):
            t = em[:, j]
            q.ready.append(t)
            q.key.append(EMERGENCY_KEY + t)
            q.dur.append(np.exp(model.em_len_mu + model.em_len_sigma * _z(model, rng.random(n)))
                         + _sample_gap(model, rng, n))
            q.ids.append(None)
    return q


def _dispatch(q: _Queue) -> np.ndarray:
    """Run the dispatch rule on every sample at once; (N, K) start times (nan = never)."""
    n = q.free.shape[0]
    k = len(q.ids)
    if k == 0:
        return np.empty((n, 0))
    ready = np.stack(q.ready, axis=1)
    key = np.stack(q.key, axis=1)
    dur = np.stack(q.dur, axis=1)
    remaining = np.isfinite(ready)
    start = np.full((n, k), np.nan)
    free = q.free.copy()
    rows = np.arange(n)
    inf = np.inf
    for _ in range(k):
        nxt = np.where(remaining, ready, inf).min(axis=1)
        active = np.isfinite(nxt)
        if not active.any():
            break
        # An idle vet waits for the next client to become ready; a busy one does not.
        t = np.where(active, np.maximum(free, nxt), free)
        score = np.where(remaining & (ready <= t[:, None]), key, inf)
        idx = score.argmin(axis=1)
        r, c = rows[active], idx[active]
        start[r, c] = t[active]
        free = np.where(active, t + dur[rows, idx], free)
        remaining[r, c] = False
    return start
