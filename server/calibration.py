"""Calibrate the range told on the clinic's own past days: pure, no I/O.

A model's simulated spread is only as honest as the model: what it does not know (a
consult type behaving differently this season, a rule of the clinic it does not simulate)
makes the range too narrow or too wide. So `calibrate_model` replays the clinic's most
recent finished days through the estimator as they happened, each day with a model
learned *without* that day (as a new day will be met), asks for estimates every 40
minutes, and notes where each real start fell among the simulated ones (its rank, or
"PIT"). The sampled quantiles that held 9% of the real starts below and 9% above become
the levels the range is read at, separately for clients already waiting and clients still
to come. With a well-specified model they come out near 0.09 and 0.91; a model that is too
sure of itself gets wider levels. (Never narrower: the clinic's past days may have been
calmer than the next one.) Nothing here is fitted to
any one clinic: it is the clinic's own history that sets them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np

from .domain import DayState, Visit
from .estimator import points, simulate
from .learning import Model, Settings, fit, visit_day

QUERY_EVERY = timedelta(minutes=40)
NOSHOW_MARKED_AFTER = timedelta(minutes=15)  # when reception is assumed to mark a no-show
CAL_SAMPLES = 64
# Up to this many days of history, each replayed day gets a model learned without it (a
# short history's model fits its own days too well to judge them); beyond it the model of
# the whole history is used, each day being a small part of it (and learning is not free).
HOLD_OUT_DAYS = 7
K_CAL = 40.0  # visits' worth of weight the nominal levels keep against the replayed ones
TIE_MIN = 0.01


def day_state_at(visits: list[Visit], vets: list[str], t: datetime) -> DayState:
    """A finished day as the estimator would have seen it at `t`."""
    out: dict[str, Visit] = {}
    for v in visits:
        arrived = v.arrived if v.arrived is not None and v.arrived <= t else None
        if v.kind != "appointment" and arrived is None:
            continue
        started = v.started if v.started is not None and v.started <= t else None
        ended = v.ended if v.ended is not None and v.ended <= t else None
        noshow = (v.kind == "appointment" and v.arrived is None and v.scheduled is not None
                  and v.scheduled + NOSHOW_MARKED_AFTER <= t)
        out[v.id] = Visit(id=v.id, kind=v.kind, vet=v.vet, type=v.type, booked_min=v.booked_min,
                          scheduled=v.scheduled, arrived=arrived, started=started, ended=ended, noshow=noshow,
                          expected_min=v.expected_min, pet=v.pet)
    return DayState(vets=vets, visits=out)


def replay_rows(model: Model, visits: list[Visit], vets: list[str]) -> dict[str, list[list[float]]]:
    """Every estimate a past day would have had, against what really happened.

    Rows per group ("here", "coming"): [real start, booked-length answer, median without
    unannounced emergencies, median with them, randomised rank of the real start among the
    samples with them, share of those samples at or before it], times in minutes from the
    query.
    """
    times = [t for v in visits for t in (v.scheduled, v.arrived, v.started) if t is not None]
    starts = [v.started for v in visits if v.started is not None]
    out: dict[str, list[list[float]]] = {"here": [], "coming": []}
    if not times or not starts:
        return out
    t = t0 = min(times).replace(minute=0, second=0, microsecond=0)
    last = max(starts)
    real = {v.id: (v.started - t0).total_seconds() / 60.0 for v in visits if v.started is not None}
    rng = np.random.default_rng(len(visits))
    while t <= last:
        state = day_state_at(visits, vets, t)
        shift = (t - t0).total_seconds() / 60.0
        booked = {vid: p for ids, st, _ in simulate(state, t, None, n=1) for vid, p in zip(ids, st[0], strict=True)}
        for ids, samples, _floor in simulate(state, t, model, n=CAL_SAMPLES):
            cols = [j for j, vid in enumerate(ids) if vid in real]
            if not cols:
                continue
            x = np.array([real[ids[j]] for j in cols]) - shift
            pts = points(samples[:, cols], np.array([booked[ids[j]] for j in cols]))
            risky = samples[CAL_SAMPLES // 2:, cols]
            below = (risky < x - TIE_MIN).sum(axis=0)
            tied = (np.abs(risky - x) <= TIE_MIN).sum(axis=0)
            # Randomised rank: ties and the gaps between samples spread evenly.
            pit = (below + rng.random(len(cols)) * (tied + 1)) / (len(risky) + 1)
            # The share of samples at or below the real start: the range's start is after the
            # real one only when read below it. Not randomised: many starts are exactly at the
            # earliest the rules allow (client early, vet free), as are many samples, and such
            # a start is inside any range that begins there.
            atmost = (below + tied) / len(risky)
            for i, j in enumerate(cols):
                group = "here" if state.visits[ids[j]].arrived is not None else "coming"
                out[group].append([float(x[i]), float(pts[0, i]), float(pts[1, i]), float(pts[2, i]), float(pit[i]),
                                   float(atmost[i])])
        t += QUERY_EVERY
    return out


# Mixes of (booked answer, calm median, median) the told start may take; the plain median
# first, so that it is kept unless another does better on the clinic's own days.
SWITCH_GAIN = 0.03
POINT_MIXES = [(0.0, 0.0, 1.0), (0.0, 0.5, 0.5), (0.0, 1.0, 0.0), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0),
               (1.0, 0.0, 0.0)]


def _evidence(gains: list[float]) -> float:
    """How sure the clinic's own days make us that the model's start beats the booked-length
    answer, from each held-out day's gain (booked answer's mean error less the model's):
    P(mean gain > 0), the mean's uncertainty read from how much the days' gains differ."""
    if not gains:
        return 0.0
    g = np.asarray(gains)
    if len(g) < 2:
        return 1.0 if g[0] > 0 else 0.0
    se = float(g.std(ddof=1)) / math.sqrt(len(g))
    if se <= 0:
        return 1.0 if g.mean() > 0 else 0.0
    return 0.5 * math.erfc(-float(g.mean()) / se / math.sqrt(2.0))


def calibrate_model(model: Model, visits: list[Visit], booked: Mapping[str, float], s: Settings) -> None:
    """Set `model.calibration` from replaying the most recent `s.calibration_days` days."""
    by_day: dict[str, list[Visit]] = defaultdict(list)
    for v in visits:
        if v.started or v.arrived or v.scheduled:
            by_day[visit_day(v, model.day_turnover_min)].append(v)
    days = sorted(by_day)
    if len(days) < 2:
        return
    vets = sorted({v.vet for v in visits})
    rows: dict[str, list[list[float]]] = {"here": [], "coming": []}
    n_visits = 0
    for i, day in enumerate(days[-s.calibration_days:]):
        m = model
        if len(days) <= HOLD_OUT_DAYS:
            # Learned without the day replayed, as tomorrow will be met.
            m = fit([v for d in days if d != day for v in by_day[d]], booked, s)
        got = replay_rows(m, by_day[day], vets)
        for g in rows:
            rows[g] += [[*row, float(i)] for row in got[g]]  # and which day it was
        n_visits += sum(1 for v in by_day[day] if v.kind != "emergency")
    lo_nom, hi_nom = s.tail_low, 1.0 - s.tail
    w = n_visits / (n_visits + K_CAL)
    for g, r in rows.items():
        if len(r) < 20:
            continue
        a = np.asarray(r)
        # The start told to a client already here: the mix with the smallest mean error on
        # these days, away from the plain median only for a clear gain. Not for clients still
        # to come: hours ahead, a few past days' errors all hang on the same few emergencies,
        # and the choice measured on them did not carry over to a new day.
        errs = [float(np.abs(a[:, 1:4] @ np.asarray(w) - a[:, 0]).mean()) for w in POINT_MIXES]
        best = int(np.argmin(errs))
        if g == "here" and errs[best] < (1.0 - SWITCH_GAIN) * errs[0]:
            model.point[g] = list(POINT_MIXES[best])
        if len(days) <= HOLD_OUT_DAYS:
            # A young clinic: the model's start is trusted over the booked-length answer only
            # as far as the days held out show it better, day after day (not on one lucky
            # day). With more history every figure rests on enough evidence (and the days
            # replayed are no longer held out, so they could not say).
            mix = np.asarray(model.point[g])
            gains = []
            for d in np.unique(a[:, 6]):
                day_rows = a[a[:, 6] == d]
                if len(day_rows) >= 5:
                    gains.append(float(np.abs(day_rows[:, 1] - day_rows[:, 0]).mean()
                                       - np.abs(day_rows[:, 1:4] @ mix - day_rows[:, 0]).mean()))
            trust = _evidence(gains)
            model.point[g] = [float(x) for x in trust * mix + (1.0 - trust) * np.array([1.0, 0.0, 0.0])]
        lo = float(np.quantile(a[:, 5], s.tail_low))
        hi = float(np.quantile(a[:, 4], 1.0 - s.tail))
        # The end only ever later than the model's own spread says: a clinic's past days may
        # have been calmer than the next one, and a range too narrow is the error clients
        # mind. The start goes where the clinic's days put it, either way: a simulation
        # that knows more can happen than usually does (an emergency, a client coming
        # back late) starts its range too early, and the range then holds far more than
        # 80% while telling clients nothing.
        model.calibration[g] = [
            float(np.clip(w * lo + (1 - w) * lo_nom, 0.005, 0.45)),
            float(np.clip(w * hi + (1 - w) * hi_nom, hi_nom, 0.995)),
        ]
    model.calibrated_on = len(rows["here"]) + len(rows["coming"])
