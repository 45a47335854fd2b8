"""The scorer's estimate figures, in-process: the public days straight through `estimate`.

    .venv/bin/python bench/replay_eval.py ../shared/replay/public/*.json      # per group and pooled
    .venv/bin/python bench/replay_eval.py --loro ../shared/replay/public/*.json  # leave one regime out

`score.py` drives `waitroom replay` (the real write path, texts included) and is what the
README quotes. This script asks the same questions of the same estimator without the
store in between, so a change to the learning can be measured on all 28 days in about a
minute. It reuses the scorer's own stream, queue references and summary (imported from
`../shared/replay/score.py`), so its figures match the scorer's estimate lines.

`--loro`: leave-one-regime-out. The estimator's few settings that are not learned from the
clinic itself (`server.learning.Settings`: the range's tail share and the
day-to-day hyperprior) are chosen from a small grid
on three groups of days and scored on the fourth, for each group in turn.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import itertools
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from server.domain import DayState, Visit
from server.estimator import estimate
from server.learning import Model, Settings, learn
from server.replay import history_visits

GROUPS = ("normal", "busy", "diverse", "sparse")


def _scorer(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("score", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _booked(sc: dict[str, Any], hist: list[Visit]) -> dict[str, float]:
    booked = {t["id"]: float(t["booked_min"]) for t in sc["clinic"]["appointment_types"]}
    for v in hist:  # a type only history knows keeps its own booked length (as insert_history does)
        if v.type is not None and v.kind != "emergency":
            booked.setdefault(v.type, v.booked_min)
    return booked


def learn_scenario(sc: dict[str, Any], settings: Settings | None = None) -> Model:
    hist = history_visits(sc["history"])
    return learn(hist, _booked(sc, hist), settings)


def run_day(score: ModuleType, sc: dict[str, Any], model: Model | None) -> tuple[list[tuple[Any, ...]], list[float]]:
    """The scorer's rows for one day (query time, visit, waiting?, answer, naive, booked, oracle)."""
    state = score.State(sc)
    today = DayState(vets=[v["id"] for v in sc["clinic"]["vets"]])
    for v in sc["day"]["visits"]:
        if v["kind"] == "appointment":
            today.visits[v["id"]] = Visit(id=v["id"], kind="appointment", vet=v["vet"], type=v["type"],
                                          booked_min=float(v["booked_min"]),
                                          scheduled=datetime.fromisoformat(v["scheduled"]), pet=v.get("pet"))
    rows, lat = [], []
    for e in score.events_for(sc):
        t, at = e["type"], e["at"]
        if t != "query":
            state.apply(e)
            if t == "checkin":
                today.visits[e["appointment"]].arrived = at
            elif t == "noshow":
                today.visits[e["appointment"]].noshow = True
            elif t == "walkin":
                a = e["appointment"]
                today.visits[a["id"]] = Visit(id=a["id"], kind="walkin", vet=a["vet"], type=a["type"],
                                              booked_min=float(a["booked_min"]), arrived=at)
            elif t == "emergency":
                today.visits[e["id"]] = Visit(id=e["id"], kind="emergency", vet=e["vet"], type=None,
                                              booked_min=float(e["expected_min"] or 45.0), arrived=at,
                                              expected_min=e["expected_min"])
            elif t in ("start", "emergency_start"):
                today.visits[e.get("appointment") or e["id"]].started = at
            elif t in ("end", "emergency_end"):
                today.visits[e.get("appointment") or e["id"]].ended = at
            continue
        t0 = time.perf_counter()
        est = estimate(today, at, model)
        lat.append(time.perf_counter() - t0)
        got = {vid: {"start": x.start.isoformat(), "p10": x.p10.isoformat(), "p90": x.p90.isoformat()}
               for vid, x in est.items()}
        booked = state.queue_estimate(at, oracle=False)
        oracle = state.queue_estimate(at, oracle=True)
        for vid in state.pending(at):
            v = state.visits[vid]
            if v["started"] is None:
                continue
            if vid not in got:
                raise RuntimeError(f"{sc['name']}: no estimate for {vid} at {at}")
            naive = max(at, datetime.fromisoformat(v["scheduled"])) if v["scheduled"] else at
            rows.append((at, f"{sc['name']}/{vid}", vid in state.checkin, got[vid], naive,
                         booked.get(vid, naive), oracle.get(vid, naive)))
    return rows, lat


def evaluate(score: ModuleType, scenarios: list[dict[str, Any]], settings: Settings | None = None,
             no_model: bool = False) -> dict[str, Any]:
    rows: list[tuple[Any, ...]] = []
    visits: dict[str, dict[str, Any]] = {}
    lat: list[float] = []
    for sc in scenarios:
        model = None if no_model else learn_scenario(sc, settings)
        r, la = run_day(score, sc, model)
        rows += r
        lat += la
        for v in sc["day"]["visits"]:
            visits[f"{sc['name']}/{v['id']}"] = v
    out: dict[str, Any] = score.summarize(rows, visits)
    lat.sort()
    out["estimate_ms_p50"] = round(1000 * lat[len(lat) // 2], 2)
    out["estimate_ms_p99"] = round(1000 * lat[int(0.99 * (len(lat) - 1))], 2)
    return out


def line(name: str, r: dict[str, Any]) -> str:
    w, u = r["waiting"], r["upcoming"]
    return (f"{name:9s} waiting: MAE {w['model']['mae']:5.2f} (booked {w['booked']['mae']:5.2f}, oracle "
            f"{w['oracle']['mae']:5.2f}) gap {w['gap_closed']:6.3f} cov {w['coverage_p10_p90']:.3f} "
            f"after-P90 {w['after_p90']:.3f} | upcoming: gap {u['gap_closed']:6.3f} cov {u['coverage_p10_p90']:.3f} "
            f"after-P90 {u['after_p90']:.3f} | p99 {r['estimate_ms_p99']:.1f} ms")


def loss(r: dict[str, Any]) -> float:
    """What the grid search minimises: error first, and a range that misses its 80% (or lets
    more than 1 in 10 start after its end) is penalised."""
    w, u = r["waiting"], r["upcoming"]
    pen = 0.0
    for g in (w, u):
        pen += 20.0 * max(0.0, abs(g["coverage_p10_p90"] - 0.815) - 0.02)
        pen += 40.0 * max(0.0, g["after_p90"] - 0.09)
    return -(w["gap_closed"] + u["gap_closed"]) + pen


# The settings that are statements about clinics in general (see `Settings`): how much of
# the range to leave out on each side (history's days can be calmer than a new one), and how
# much a vet's day may differ from their usual before any of it is seen.
GRID: dict[str, tuple[float, ...]] = {"tail": (0.09, 0.065), "tau_off": (0.2, 0.4)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="+", type=Path)
    p.add_argument("--score", type=Path, default=Path("../shared/replay/score.py"))
    p.add_argument("--loro", action="store_true", help="leave one regime out (see above)")
    p.add_argument("--booked", action="store_true", help="no history at all: the booked-length answer")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    score = _scorer(a.score)
    by_group: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    for path in a.scenarios:
        sc = json.loads(path.read_text())
        by_group.setdefault(sc["name"].split("-")[0], []).append(sc)
    groups = [g for g, scs in by_group.items() if scs]
    results: dict[str, Any] = {}
    if not a.loro:
        for g in groups:
            results[g] = evaluate(score, by_group[g], no_model=a.booked)
            print(line(g, results[g]), flush=True)
        results["pooled"] = evaluate(score, [sc for g in groups for sc in by_group[g]], no_model=a.booked)
        print(line("pooled", results["pooled"]))
    else:
        base = Settings()
        combos = [dict(zip(GRID, vals, strict=True)) for vals in itertools.product(*GRID.values())]
        per: dict[tuple[int, str], dict[str, Any]] = {}
        for i, c in enumerate(combos):
            s = dataclasses.replace(base, **c)
            for g in groups:
                per[(i, g)] = evaluate(score, by_group[g], s)
            print(f"settings {c}: " + ", ".join(f"{g} {loss(per[(i, g)]):.3f}" for g in groups),
                  file=sys.stderr, flush=True)
        for g in groups:
            others = [h for h in groups if h != g]
            best = min(range(len(combos)), key=lambda i: sum(loss(per[(i, h)]) for h in others))
            results[g] = {**per[(best, g)], "chosen_on": others, "settings": combos[best]}
            print(line(g, results[g]) + f"  (settings chosen on {'+'.join(others)}: {combos[best]})")
    if a.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
