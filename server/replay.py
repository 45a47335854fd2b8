"""`waitroom replay`: ../shared/replay/PROTOCOL.md on stdin/stdout, through the real code path.

The day goes into an in-memory store through the same `import_schedule` and
`ClinicRuntime.post_event` the API uses, and answers come from the same runtime's
estimates, so the scorer measures what a client would be told.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import date, datetime, tzinfo
from typing import IO, Any

from server.domain import Visit
from server.errors import WaitroomError
from server.events import parse_event
from server.runtime import ClinicRuntime
from server.schedule import import_schedule
from server.store import Clinic, SqliteStore
from server.texts import TextingOptions
from server.timeutil import iso

log = logging.getLogger("waitroom.replay")

def _t(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def history_visits(days: Iterable[dict[str, Any]]) -> list[Visit]:
    out = []
    for day in days:
        for v in day.get("visits", []):
            out.append(Visit(
                id=v["id"], kind=v["kind"], vet=v["vet"], type=v.get("type"),
                booked_min=float(v.get("booked_min") or v.get("expected_min") or 20),
                scheduled=_t(v.get("scheduled")), arrived=_t(v.get("arrived")),
                started=_t(v.get("started")), ended=_t(v.get("ended")),
                noshow=v["kind"] == "appointment" and not v.get("arrived"),
                expected_min=v.get("expected_min"), pet=v.get("pet"),
            ))
    return out


class Replay:
    def __init__(self, store: SqliteStore, *, texts: bool = True) -> None:
        self.store = store
        self.runtime: ClinicRuntime | None = None
        self.history: list[Visit] = []
        self.texts = texts
        self._last_text = 0

    async def handle(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        kind = msg.get("type")
        if kind == "clinic":
            clinic = Clinic(name="replay", timezone=msg.get("tz_offset") or "UTC")
            async with self.store.transaction() as tx:
                await tx.set_clinic(clinic)
                await import_schedule(tx, {"vets": msg.get("vets", []),
                                             "appointment_types": msg.get("appointment_types", [])},
                                      clinic.tz, clinic.region)
            return None
        if kind == "history":
            clinic = await self.store.clinic()
            self.history = history_visits(msg.get("days", []))
            async with self.store.transaction() as tx:
                await tx.add_history(self.history, clinic.tz)
            return None
        if kind == "schedule":
            clinic = await self.store.clinic()
            async with self.store.transaction() as tx:
                await import_schedule(tx, {"appointments": msg.get("appointments", [])},
                                      clinic.tz, clinic.region)
            # Exact times (no rounding), and texts decided by the real policy into the real
            # outbox, with every client reachable as the protocol says.
            self.runtime = await ClinicRuntime.start(
                self.store, date.fromisoformat(msg["date"]), estimate_granularity_s=0.0,
                texting=TextingOptions(replay=True) if self.texts else None)
            return None
        rt = self.runtime
        if rt is None:
            raise ValueError("replay: the schedule line must come before the day's events")
        tz = rt.clinic.tz
        if kind == "query":
            now = datetime.fromisoformat(msg["at"])
            if self.texts:
                await rt.tick(now)  # as the server's periodic re-evaluation would
            est = await rt.estimates(now, exact=True)
            visits = (await rt.day_state(rt.today(now))).visits
            answer: dict[str, Any] = {"id": msg["id"], "estimates": [
                {"appointment": e.visit, "start": iso(e.start, tz), "p10": iso(e.p10, tz), "p90": iso(e.p90, tz)}
                for e in est.values() if visits[e.visit].kind != "emergency"
            ]}
            if self.texts:
                answer["texts"] = await self._new_texts(tz)
            return answer
        ev = parse_event(msg, tz, datetime.fromisoformat(msg["at"]))
        try:
            await rt.post_event(ev, "replay", ev.at)
        except WaitroomError as e:
            # The real system refuses it too; the replay goes on, as the clinic would.
            log.warning("refused %s: %s", kind, e.message)
            return None
        return None

    async def _new_texts(self, tz: tzinfo) -> list[dict[str, Any]]:
        """Delay texts the outbox took since the last answer, in the protocol's shape."""
        async with self.store.read() as q:
            told = await q.texts_told_after(self._last_text)
        out = []
        for t in told:
            self._last_text = t.id
            out.append({"appointment": t.visit_id, "at": iso(t.at, tz), "kind": "delay",
                        "start": iso(t.start, tz), "p10": iso(t.p10, tz), "p90": iso(t.p90, tz)})
        return out


async def run(stdin: IO[str], stdout: IO[str], *, texts: bool = True) -> int:
    # aiosqlite's thread even in memory: running the statements on this thread instead saved
    # CPU but, on a machine loaded by other processes, answers came later (p50 13-22 ms against
    # 7.6 ms at load 11, same CPU): each hand-off to the database thread is a wake-up, which
    # the kernel's scheduler serves ahead of busy processes; one thread that never sleeps waits
    # its turn among them.
    store = await SqliteStore.open(":memory:")
    replay = Replay(store, texts=texts)
    lines = (json.loads(line) for line in stdin if line.strip())
    try:
        msg = next(lines, None)
        while msg is not None:
            nxt = None
            if msg.get("type") not in ("clinic", "history", "schedule", "query") and replay.runtime is not None:
                # An event is never answered, so the next line is already on its way: look at it.
                # If it happens at the very same moment, one decision after both is the same as
                # one after each (the server would take it once for a batch posted together).
                nxt = next(lines, None)
                replay.runtime.defer = nxt is not None and nxt.get("at") == msg.get("at")
            answer = await replay.handle(msg)
            if replay.runtime is not None:
                replay.runtime.defer = False
            if answer is not None:
                stdout.write(json.dumps(answer) + "\n")
                stdout.flush()
            msg = nxt if nxt is not None else next(lines, None)
    finally:
        await store.close()
    return 0


def main(*, texts: bool = True) -> int:
    import asyncio

    return asyncio.run(run(sys.stdin, sys.stdout, texts=texts))
