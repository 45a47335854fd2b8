"""The reports outside the browser: `waitroom report --format csv|json|html` (issue 17 item 3).

csv: every table, each under a `# name: title` line (or one table with --table); json: the
tables as lists of objects with the readings; html: one self-contained file (styles and charts
inline, nothing fetched) a manager can e-mail.
"""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Any

from server.report_plots import PLOTS, plot
from server.reports import Report


def _rows_csv(columns: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        # A cell starting with = + - @ is a formula to a spreadsheet: quote it as text.
        w.writerow(["'" + c if isinstance(c, str) and c[:1] in ("=", "+", "-", "@") else c for c in r])
    return buf.getvalue()


def table_csv(rep: Report, name: str) -> str:
    t = rep.tables[name]
    return _rows_csv(t.columns, t.rows)


def report_csv(rep: Report) -> str:
    return "\n".join(f"# {name}: {t.title}\n{_rows_csv(t.columns, t.rows)}" for name, t in rep.tables.items())


def report_json(rep: Report, clinic: str) -> str:
    return json.dumps({
        "clinic": clinic, "period": {"kind": rep.period.kind, "from": rep.period.first.isoformat(),
                                     "to": rep.period.last.isoformat()},
        "vet": rep.vet, "readings": rep.readings,
        "tables": {name: {"title": t.title, "note": t.note, "rows": t.as_dicts()} for name, t in rep.tables.items()},
    }, indent=1, default=str)


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:1rem auto;padding:0 1rem;color:#111}"
        "table{border-collapse:collapse;font-size:.85rem}th,td{border-bottom:1px solid #ccc;padding:.2rem .5rem;"
        "text-align:left}.reading{font-weight:600}.note{color:#444;font-size:.9rem}svg{max-width:100%;height:auto}")


def report_html(rep: Report, clinic: str, *, max_rows: int = 500) -> str:
    """One HTML file: every table (at most `max_rows` rows each; the CSV has all) and every chart."""
    e = html.escape
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(clinic)} - reports - "
           f"{e(rep.period.label)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{e(clinic)}: reports for {e(rep.period.label)}</h1>"]
    charts = {name: plot(rep, name) for name in PLOTS}
    placed = {"waits_by_vet": "waits", "delay_by_cause": "delay", "accuracy": "accuracy",
              "late_by_weekday_hour": "heatmap"}
    for name, t in rep.tables.items():
        if name in placed:
            out.append(f"<figure>{charts[placed[name]]}</figure>")
        out.append(f"<h2>{e(t.title)}</h2>")
        if name in rep.readings:
            out.append(f"<p class='reading'>{e(rep.readings[name])}</p>")
        if t.note:
            out.append(f"<p class='note'>{e(t.note)}</p>")
        out.append("<table><thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in t.columns) + "</tr></thead><tbody>")
        for r in t.rows[:max_rows]:
            out.append("<tr>" + "".join(f"<td>{e('' if c is None else str(c))}</td>" for c in r) + "</tr>")
        out.append("</tbody></table>")
        if len(t.rows) > max_rows:
            out.append(f"<p class='note'>First {max_rows} of {len(t.rows)} rows; `--format csv` has them all.</p>")
    out.append("</body></html>")
    return "\n".join(out)
