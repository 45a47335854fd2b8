"""The reports' charts, drawn by matplotlib's SVG backend (no display, no internet, no files).

Each chart has a title, axis units and a one-line reading computed from the data (the
subtitle); colours are the Okabe-Ito palette, safe for the common colour-vision deficiencies,
and the heat map uses cividis (made for them). matplotlib is imported here only, on first use.
"""

from __future__ import annotations

import io
import threading
from typing import Any

from server.reports import CAUSES, WEEKDAYS, Report

OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
PLOTS = ("waits", "heatmap", "delay", "accuracy")
_LOCK = threading.Lock()  # pyplot's state is global: one figure at a time


def _plt() -> Any:
    import matplotlib

    matplotlib.use("svg")
    matplotlib.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                                "axes.spines.right": False, "svg.hashsalt": "waitroom"})
    import matplotlib.pyplot as plt

    return plt


def _svg(fig: Any, plt: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # inline in a page: no XML prolog or doctype


def _frame(plt: Any, title: str, reading: str, size: tuple[float, float] = (7.0, 3.2)) -> tuple[Any, Any]:
    # Constrained layout keeps the title, the reading under it and the axes apart.
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    fig.suptitle(title, x=0.01, ha="left", fontsize=11, fontweight="bold")
    ax.set_title(reading or "No data in this period.", loc="left", fontsize=9, color="#333333")
    return fig, ax


def plot(rep: Report, name: str) -> str:
    """One chart of the report as an SVG document (`name` one of PLOTS)."""
    if name not in PLOTS:
        raise KeyError(name)
    with _LOCK:
        plt = _plt()
        fig, _ = _DRAW[name](plt, rep)
        return _svg(fig, plt)


def _waits(plt: Any, rep: Report) -> tuple[Any, Any]:
    rows = [r for r in rep.tables["waits_by_hour"].rows if r[2] is not None]  # hours with a wait measured
    fig, ax = _frame(plt, "Wait from check-in to consult start, by hour booked", rep.readings.get("waits", ""))
    hours = [r[0] for r in rows]
    x = list(range(len(rows)))
    ax.bar([i - 0.2 for i in x], [r[2] or 0 for r in rows], 0.4, label="median", color=OKABE_ITO[4])
    ax.bar([i + 0.2 for i in x], [r[3] or 0 for r in rows], 0.4, label="P90 (9 in 10 waited less)",
           color=OKABE_ITO[0])
    ax.set_xticks(x, hours)
    ax.set_xlabel("hour of the booked time (clinic time)")
    ax.set_ylabel("minutes")
    ax.legend(frameon=False)
    return fig, plt


def _heatmap(plt: Any, rep: Report) -> tuple[Any, Any]:
    fig, ax = _frame(plt, "Minutes past the booked time, by weekday and hour (median)",
                     rep.readings.get("heatmap", ""))
    if rep.heat:
        days = sorted({d for d, _ in rep.heat})
        hours = list(range(min(h for _, h in rep.heat), max(h for _, h in rep.heat) + 1))
        grid = [[rep.heat.get((d, h), float("nan")) for h in hours] for d in days]
        im = ax.imshow(grid, cmap="cividis", aspect="auto")
        ax.set_yticks(range(len(days)), [WEEKDAYS[d] for d in days])
        ax.set_xticks(range(len(hours)), [f"{h:02d}" for h in hours])
        for i, d in enumerate(days):
            for j, h in enumerate(hours):
                if (d, h) in rep.heat:
                    v = rep.heat[(d, h)]
                    ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if v < (max(rep.heat.values()) + min(rep.heat.values())) / 2 else "black")
        fig.colorbar(im, ax=ax, label="minutes late (median)")
    ax.set_xlabel("hour of the booked time (clinic time)")
    return fig, plt


def _delay(plt: Any, rep: Report) -> tuple[Any, Any]:
    t = rep.tables["delay_by_cause"]
    fig, ax = _frame(plt, f"Why the {'day' if rep.period.days <= 62 else 'week'} ran late: delay by cause",
                     rep.readings.get("delay", ""))
    labels = [r[0][-5:] if rep.period.days <= 62 else r[0].removeprefix("week of ")[5:] for r in t.rows]
    bottom = [0.0] * len(t.rows)
    for k, cause in enumerate(CAUSES):
        vals = [float(r[1 + k]) for r in t.rows]
        if any(vals):
            ax.bar(range(len(vals)), vals, 0.8, bottom=bottom, label=cause, color=OKABE_ITO[k])
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    step = max(1, len(labels) // 20)
    ax.set_xticks(range(0, len(labels), step), labels[::step], rotation=45, ha="right")
    ax.set_ylabel("client-minutes past booked time")
    if t.rows:
        ax.legend(frameon=False, fontsize=7, ncols=3)
    return fig, plt


def _accuracy(plt: Any, rep: Report) -> tuple[Any, Any]:
    t = rep.tables["accuracy"]
    fig, ax = _frame(plt, "How good our estimates were: error at check-in", rep.readings.get("accuracy", ""))
    labels = [r[0][-5:] if rep.period.days <= 62 else r[0].removeprefix("week of ")[5:] for r in t.rows]
    x = list(range(len(labels)))
    ax.plot(x, [r[2] if r[2] is not None else float("nan") for r in t.rows], marker="o", color=OKABE_ITO[4],
            label="our estimate (mean absolute error)")
    ax.plot(x, [r[5] if r[5] is not None else float("nan") for r in t.rows], marker="s", linestyle="--",
            color=OKABE_ITO[5], label="booked-length baseline")
    step = max(1, len(labels) // 20)
    ax.set_xticks(x[::step], labels[::step], rotation=45, ha="right")
    ax.set_ylabel("minutes off the real start")
    ax.set_ylim(bottom=0)
    if t.rows:
        ax.legend(frameon=False, fontsize=7)
    return fig, plt


_DRAW = {"waits": _waits, "heatmap": _heatmap, "delay": _delay, "accuracy": _accuracy}
