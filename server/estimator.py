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
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from .domain import DEFAULT_EMERGENCY_MIN, DayState, Estimate, Visit
from .learning import N_QUANTILES, Model, _erfinv, _local_hour

EARLY_START_MIN = 5.0  # nobody is started more than this before their scheduled time
SAMPLES = 256
# Emergencies sort before everyone; a vet's blocked time (a staff meeting) before clients;
# reception's priorities before ordinary clients.
EMERGENCY_KEY = -1e7
BLOCK_KEY = -5e6
PRIORITY_KEY = -1e6
PRIORITY_STEP = 1e4
# The simulated spread misses what the model itself gets wrong (a vet's off day, a
# wrongly learned mean); widen the sampled range a little to keep ~80% coverage.
WIDEN_LOW = 1.1
WIDEN_HIGH = 1.25
# Clients not yet here: the 5-minute rule already bunches the low end at their booked
# time, so that side needs no widening.
WIDEN_LOW_UP = 1.0
WIDEN_HIGH_UP = 1.1
FUTURE_BIN_MIN = 10.0
MAX_FUTURE_SLOTS = 8
HORIZON_PAD_MIN = 90.0
MAX_HORIZON_MIN = 14 * 60.0

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


def estimate(state: DayState, now: datetime, model: Model | None = None,
             vets: Collection[str] | None = None) -> dict[str, Estimate]:
    """One `Estimate` per pending visit of `state`, as seen at `now`.

    Never earlier than `now`, deterministic for the same input (the random streams are
    seeded from the date of `now` and the vet), no clock reads and no I/O. With `vets`,
    only those vets' visits are estimated, with exactly the numbers a full run gives them
    (each vet's queue is simulated on its own random stream).
    """
    n = SAMPLES if model is not None else 1
    hours = _bin_hours(now, model)
    out: dict[str, Estimate] = {}
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
        queues.append(_build_queue(vet, visits, state, now, model, n, rng, hours))
    for q, starts in zip(queues, _dispatch_all(queues), strict=True):
        cols = [c for c, vid in enumerate(q.ids) if vid is not None]
        s = starts[:, cols]
        if model is not None:
            # The range comes from the samples where emergencies may still walk in; the
            # start of a client already here from those where none does: a rare
            # emergency should widen what we promise, not move the time we show.
            calm, risky = s[: n // 2], s[n // 2 :]
            p10, p50, p90 = np.quantile(risky, (0.1, 0.5, 0.9), axis=0)
            here = np.array([state.visits[str(q.ids[c])].arrived is not None for c in cols])
            # (Clients still to come keep the risky median: over hours an emergency is
            # no longer rare, and measured on replayed days this is the better start.)
            p50 = np.where(here, np.median(calm, axis=0), p50)
            wl = np.where(here, WIDEN_LOW, WIDEN_LOW_UP)
            wh = np.where(here, WIDEN_HIGH, WIDEN_HIGH_UP)
            lo = p50 - wl * (p50 - p10)
            hi = p50 + wh * (p90 - p50)
        else:
            # Booked-length fallback: no spread to sample, so a rough range that grows with
            # the wait (the further ahead, the more can go wrong).
            p50 = s[0]
            lo = p50 - 0.1 * p50 - 2.0
            hi = p50 + 0.3 * p50 + 5.0
        p50 = np.maximum(p50, 0.0)
        lo = np.minimum(np.maximum(lo, q.floor[cols]), p50)
        hi = np.maximum(hi, p50)
        for j, c in enumerate(cols):
            vid = q.ids[c]
            assert vid is not None
            out[vid] = Estimate(
                visit=vid,
                start=now + timedelta(minutes=float(p50[j])),
                p10=now + timedelta(minutes=float(lo[j])),
                p90=now + timedelta(minutes=float(hi[j])),
            )
    return out


def _rel(t: datetime, now: datetime) -> float:
    return (t - now).total_seconds() / 60.0


def _bin_hours(now: datetime, model: Model | None) -> np.ndarray:
    """Local clock hour of each future-arrival bin, from now to the end of the horizon."""
    if model is None:
        return np.empty(0, dtype=int)
    n_bins = int(MAX_HORIZON_MIN / FUTURE_BIN_MIN)
    return np.array([
        _local_hour(now + timedelta(minutes=FUTURE_BIN_MIN * (b + 0.5)), model.utc_offset_min)
        for b in range(n_bins)
    ])


# -- sampling helpers -------------------------------------------------------------------


def _table(q: list[float]) -> np.ndarray:
    """A quantile list resampled on a fine uniform grid, so drawing is one gather."""
    return np.asarray(np.interp(_FINE, _GRID, np.asarray(q)))


def _draw(table: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw for uniforms `u` in [0, 1) from a `_table`."""
    return table[(u * (FINE - 1) + 0.5).astype(np.intp)]


def _z(model: Model, u: np.ndarray) -> np.ndarray:
    """Standardised residuals drawn from the clinic's own residual distribution."""
    return _draw(_table(model.residuals), u)


def _sample_gap(model: Model, rng: np.random.Generator, shape: int | tuple[int, int]) -> np.ndarray:
    return _draw(_table(model.gaps), rng.random(shape))


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
    # Log-normal rather than the empirical residual pool here: the pool ends at the
    # longest consult seen, which would make a long overrun look nearly over.
    z_e = (math.log(max(elapsed, 0.1)) - mu) / sigma
    tail = 0.5 * math.erfc(z_e / math.sqrt(2.0))  # P(longer than elapsed)
    if tail < 1e-6:
        # Beyond anything the model expects: assume a short memoryless overrun.
        return rng.exponential(max(2.0, 0.15 * math.exp(mu)), n)
    u = 1.0 - tail * rng.random(n)  # uniform over the part of the distribution still possible
    z = np.sqrt(2.0) * _erfinv(np.minimum(2.0 * u - 1.0, 1.0 - 1e-12))
    total = np.exp(mu + sigma * np.maximum(z, z_e))
    return np.asarray(np.maximum(total - elapsed, 0.0))


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
    model: Model, kind: str, vet: str, hours: np.ndarray, horizon: float, rng: np.random.Generator, n: int
) -> np.ndarray:
    """(n, slots) arrival times of walk-ins or emergencies still to come; inf = none."""
    n_bins = min(len(hours), int(math.ceil(horizon / FUTURE_BIN_MIN)))
    if n_bins == 0:
        return np.empty((n, 0))
    lam = np.asarray(model.rate(kind, vet))[hours[:n_bins]] * (FUTURE_BIN_MIN / 60.0)
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
    hold: float = -math.inf  # blocked time: its end (the vet is back then, however late it began)


def _items(vet: str, visits: list[Visit], now: datetime, model: Model | None) -> tuple[list[_Item], list[Visit]]:
    """The visits still to be seen by this vet, and the consults in progress."""
    items: list[_Item] = []
    running: list[Visit] = []
    priorities = sorted({v.priority for v in visits if v.priority is not None})
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
        mu, sigma = _mu_sigma(model, v) if model is not None else (0.0, 0.0)
        fixed = v.booked_min if v.kind != "emergency" else (v.expected_min or DEFAULT_EMERGENCY_MIN)
        items.append(_Item(v.id if v.pending else None, ready, sched, key, mu, sigma, float(fixed)))
    return items, running


def _block_items(blocks: list[tuple[datetime, datetime]], now: datetime) -> list[_Item]:
    """A vet's blocked time still to come or under way, as visits of no length that keep the
    vet until their end: taken once the vet is free (after a waiting emergency), never
    interrupting a consult, and nobody started inside them."""
    out = []
    for start, end in blocks:
        if end > now:
            s = max(_rel(start, now), 0.0)
            out.append(_Item(None, s, math.nan, BLOCK_KEY + s, 0.0, 0.0, 0.0, _rel(end, now)))
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
) -> _Queue:
    items, running = _items(vet, visits, now, model)
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
        for v in running:
            assert v.started is not None
            rem = _sample_remaining(model, v, -_rel(v.started, now), rng, n) + _sample_gap(model, rng, n)
            free = np.maximum(free, rem)
        r = np.broadcast_to(ready, (n, k)).copy()
        todo = np.flatnonzero(np.isnan(ready))
        ghost = np.zeros((n, k), dtype=bool)
        if len(todo):
            r[:, todo], ghost[:, todo] = _sample_arrivals(model, sched[todo], rng, n)
        mu = np.array([it.mu for it in items])
        sigma = np.array([it.sigma for it in items])
        dur = np.exp(mu + sigma * _z(model, rng.random((n, k)))) + _sample_gap(model, rng, (n, k))
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
            t = _future_arrivals(model, kind, vet, hours, horizon, rng, n)
            m = t.shape[1]
            if not m:
                continue
            extra_r.append(t)
            if kind == "walkin":
                extra_k.append(t)
                mu_w = model.walkin_len_mu + model.vet_speed.get(vet, 0.0)
                d = np.exp(mu_w + model.walkin_len_sigma * _z(model, rng.random((n, m))))
            else:
                # The first half of the samples sees no unannounced emergency: see `estimate`.
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

    def pad(a: np.ndarray, fill: float) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=fill)

    stacked = _Queue(
        free=np.concatenate([q.free for q in queues]),
        ready=np.concatenate([pad(q.ready, np.inf) for q in queues]),
        key=np.concatenate([pad(q.key, np.inf) for q in queues]),
        dur=np.concatenate([pad(q.dur, 0.0) for q in queues]),
        hold=np.concatenate([pad(q.hold, -np.inf) for q in queues]),
        floor=np.zeros(width),
        ids=[],
    )
    owed = np.concatenate([
        pad(np.array([[vid is not None for vid in q.ids]] * q.ready.shape[0], dtype=float), 0.0) for q in queues
    ]).astype(bool)
    starts = _dispatch(stacked, owed)
    out, row = [], 0
    for q in queues:
        n, k = q.ready.shape
        out.append(starts[row : row + n, :k])
        row += n
    return out


def _dispatch(q: _Queue, owed: np.ndarray) -> np.ndarray:
    """Run the dispatch rule on every sample at once; (N, K) start times (nan = never)."""
    n, k = q.ready.shape
    rdy = q.ready.copy()  # set to inf once dispatched
    key, dur, hold = q.key, q.dur, q.hold
    n_owed = owed.sum(axis=1)  # (N,) visits owed an estimate in each row
    done = np.zeros(n, dtype=np.intp)
    start = np.full((n, k), np.nan)
    free = q.free.copy()
    rows = np.arange(n)
    cols = np.arange(k)  # original column of each column still in play
    for step in range(k):
        # Simulated future arrivals only matter while someone owed an estimate still waits.
        if (done >= n_owed).all():
            break
        if step and step % 4 == 0:
            # Drop the columns every row has dispatched: each step then scans less.
            alive = np.isfinite(rdy).any(axis=0)
            if not alive.all():
                rdy, key, dur, owed, cols = rdy[:, alive], key[:, alive], dur[:, alive], owed[:, alive], cols[alive]
                hold = hold[:, alive]
        nxt = rdy.min(axis=1)
        active = np.isfinite(nxt)
        # An idle vet waits for the next client to become ready; a busy one does not.
        t = np.where(active, np.maximum(free, nxt), free)
        idx = np.where(rdy <= t[:, None], key, np.inf).argmin(axis=1)
        r, c = rows[active], idx[active]
        start[r, cols[c]] = t[active]
        free = np.where(active, np.maximum(t + dur[rows, idx], hold[rows, idx]), free)
        rdy[r, c] = np.inf
        done += active & owed[rows, idx]
    return start
