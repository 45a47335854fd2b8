"""The console's "Practice system" panel (issue 19 items 2 and 3): each connector's last sync
(when, what it did, the last error in words) and the write-backs that need reception: a task
the practice system's API cannot do (move a booking a client moved by text link), or a
write-back that failed after its retries. Reception marks each one done once handled (or
"try again" for a failed one): an event in the log says who."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from server.errors import Conflict, NotFound
from server.events import Event, apply_event
from server.store import Tx
from server.store.pms import PmsWrite

LABELS = {"ezyvet": "ezyVet", "provet": "Provet Cloud"}
ACTIONS = {"arrived": "arrival", "started": "consult start", "cancelled": "cancel", "rescheduled": "move",
           "unarrived": "undone check-in", "unstarted": "undone consult start"}
STALE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class PmsPanel:
    label: str
    last_ok_at: datetime | None
    stale: bool
    error: str | None
    summary: str


async def pms_context(q: Tx, now: datetime) -> dict[str, Any]:
    """What the panel shows; empty when no connector was ever run (the panel is not drawn)."""
    panels = []
    for s in await q.pms_states():
        p = s.progress
        summary = ""
        if p and not p.get("failed"):
            summary = (f"{p.get('imported', 0)} bookings in step, {p.get('cancelled', 0)} cancelled, "
                       f"{p.get('requests', 0)} requests")
            if p.get("skipped"):
                summary += f"; {len(p['skipped'])} left out: {p['skipped'][0]}"
        panels.append(PmsPanel(LABELS.get(s.pms, s.pms), s.last_ok_at,
                               s.last_ok_at is None or now - s.last_ok_at > STALE, s.last_error, summary))
    writes: list[PmsWrite] = await q.pms_writes(("failed", "task"), 30) if panels else []
    return {"pms_panels": panels, "pms_writes": writes, "pms_action": ACTIONS, "pms_labels": LABELS}


async def pms_write_decision(request: web.Request, staff: Any) -> tuple[str, int | None]:
    """POST /console/pms/{id}/{done|retry}: a task done by hand, or a failed write-back tried again."""
    from server.http import site
    from server.keys import CLOCK

    row_id = int(request.match_info["id"])
    what = request.match_info["what"]
    rt = site(request).runtime
    now = request.app[CLOCK].now()
    async with site(request).store.transaction() as tx:
        rows = [w for w in await tx.pms_writes(("failed", "task"), 1000) if w.id == row_id]
        if not rows:
            raise NotFound(f"no open practice-system item {row_id}: reload the page for the current list", "id")
        row = rows[0]
        if what == "retry":
            if row.status != "failed":
                raise Conflict("only a failed write-back can be tried again", "id")
            await tx.finish_pms_write(row.id, "queued", now, next_at=now)
        else:
            await tx.finish_pms_write(row.id, "done", now)
        seq = await apply_event(tx, Event("pms_decision", now, row.visit_id, {
            "pms": row.pms, "write": row.id, "action": row.action, "decision": what, "status": row.status}),
            staff.actor, rt.clinic.tz, now)
    label = LABELS.get(row.pms, row.pms)
    return (f"Will try the {ACTIONS.get(row.action, row.action)} in {label} again." if what == "retry"
            else f"Marked done in {label}."), seq
