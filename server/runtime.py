"""The running clinic: the store, the learned model and today's estimates, kept in step.

Every writer ends its transaction with `after_change(tx)`, an explicit call in the write path
(docs/ARCHITECTURE.md): today's state is reloaded, estimated, the check-in promises are kept
and the notifier's policy queues the delay texts it decides, all in that same transaction.
The API, kiosk, console, reschedule page, SMS replies and replay all do, so what the scorer
measures is what clients are told.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta

from server.domain import DayState, Estimate
from server.estimator import estimate
from server.events import Event, apply_event
from server.learning import Model, learn
from server.store import Clinic, LoggedEvent, Store, Tx
from server.texts import TextingOptions, queue_delay_texts, record_promises

log = logging.getLogger("waitroom.runtime")

# At most this many visits owed an estimate: estimated on the event loop's thread (see
# `ClinicRuntime._estimate`). A busy five-vet day owes about 130 at opening.
INLINE_ESTIMATE_MAX = 200


class ClinicRuntime:
    """Holds what is derived from the store, recomputed only when the store changed."""

    def __init__(self, store: Store, clinic: Clinic, *, estimate_granularity_s: float = 10.0,
                 texting: TextingOptions | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.clinic = clinic
        self.model: Model | None = None
        self._granularity = estimate_granularity_s
        self.texting = texting
        self.clock = clock
        self._day_cache: tuple[int, date, DayState] | None = None
        self._est_cache: tuple[int, datetime, dict[str, Estimate]] | None = None
        # One computation at a time: after a write, a lobby of readers would otherwise all miss
        # the cache together (each awaits the day's state) and each run the estimator.
        self._est_lock = asyncio.Lock()
        self._day_lock = asyncio.Lock()
        self._seen_seq: int | None = None
        self._fresh: tuple[int, date, DayState, datetime, dict[str, Estimate], set[str] | None] | None = None
        self._queued = False
        # Called after a commit that queued texts (the notifier worker's wake-up).
        self.on_texts: Callable[[], None] | None = None
        # Set by the replay while it applies an event that is followed by another line at the
        # very same moment: the decision is taken once, for all of them, by that next line.
        self.defer = False
        store.after_commit.append(self._after_commit)

    @classmethod
    async def start(cls, store: Store, today: date, **kw: object) -> ClinicRuntime:
        rt = cls(store, await store.clinic(), **kw)  # type: ignore[arg-type]
        async with store.read() as q:
            rt._seen_seq = await q.last_event_seq()
        await rt.relearn(today)
        return rt

    async def reload_clinic(self) -> None:
        self.clinic = await self.store.clinic()
        self._day_cache = self._est_cache = None

    async def relearn(self, today: date) -> Model:
        """Learn the clinic from every finished day before `today`."""
        t0 = time.perf_counter()
        async with self.store.read() as q:
            history = await q.finished_visits_before(today)
            booked = await q.booked_lengths()
        self.model = learn(history, booked)
        self._est_cache = None
        log.info("learned from %d past visits in %.0f ms", len(history), 1000 * (time.perf_counter() - t0))
        return self.model

    def today(self, now: datetime) -> date:
        return now.astimezone(self.clinic.tz).date()

    def _round(self, now: datetime) -> datetime:
        """`now` rounded UP to the granularity: readers within one window share one computation,
        and nothing that already happened (an emergency a second ago) looks like the future."""
        if self._granularity > 0:
            return now + timedelta(seconds=-now.timestamp() % self._granularity)
        return now

    async def day_state(self, day: date) -> DayState:
        cached = self._day_cache
        if cached and cached[0] == self.store.version and cached[1] == day:
            return cached[2]
        async with self._day_lock:
            version = self.store.version
            cached = self._day_cache
            if cached and cached[0] == version and cached[1] == day:
                return cached[2]
            async with self.store.read() as q:
                state = await q.visits_for_day(day)
            self._day_cache = (version, day, state)
            return state

    async def estimates(self, now: datetime, *, exact: bool = False) -> dict[str, Estimate]:
        """Every pending visit's estimate at `now`.

        Served answers round `now` up to the granularity, so a busy lobby of readers costs
        one computation per event or per few seconds, and an estimate does not jitter
        between two refreshes. `exact` (the replay) answers for the very moment asked.
        """
        if not exact:
            now = self._round(now)
        cached = self._est_cache
        if cached and cached[0] == self.store.version and cached[1] == now:
            return cached[2]
        async with self._est_lock:
            version = self.store.version
            cached = self._est_cache
            if cached and cached[0] == version and cached[1] == now:
                return cached[2]
            state = await self.day_state(self.today(now))
            result = await self._estimate(state, now, None)
            # Stamped with the version read before loading: a write meanwhile makes it stale at once.
            self._est_cache = (version, now, result)
            return result

    async def _estimate(self, state: DayState, now: datetime, vets: set[str] | None) -> dict[str, Estimate]:
        """`estimate`, on this thread for an ordinary day, on a worker thread for a big one.

        A big day's estimate (seconds, at the cap) runs on a worker thread, where numpy lets go
        of the GIL in its array work, so /api/health and the live pages keep answering. An
        ordinary day's takes a few milliseconds, mostly Python that holds the GIL anyway: the
        hop to a thread and back would cost more than it frees, and on a busy machine each
        hop can wait a scheduler slice (the replay's answers were several times their CPU).
        """
        owed = sum(1 for v in state.visits.values() if v.pending and (vets is None or v.vet in vets))
        if owed <= INLINE_ESTIMATE_MAX:
            return estimate(state, now, self.model, vets)
        return await asyncio.to_thread(estimate, state, now, self.model, vets)

    async def post_event(self, ev: Event, actor: str, now: datetime) -> int:
        """Validate, apply and commit one event; durable before this returns."""
        async with self.store.transaction() as tx:
            seq = await apply_event(tx, ev, actor, self.clinic.tz, now)
            await self.after_change(tx)
            return seq

    # -- texts, in the writing transaction ------------------------------------------------------

    async def after_change(self, tx: Tx) -> list[int]:
        """What follows from the events written in `tx`: re-estimate the vets they touch, keep
        check-in promises and queue the texts the policy decides, in that same transaction.

        Every writer calls this last in its transaction (the one write path: docs/ARCHITECTURE.md).
        It covers every event since the last call, so one writer's events are never missed
        even if another's call came first. Returns the outbox rows queued.
        """
        if self.texting is None:
            return []  # estimates only (`waitroom replay --no-texts`): nothing to decide per event
        if self.defer:
            return []  # the caller evaluates these events at the same moment right after (replay)
        events = await tx.events_since(self._seen_seq or 0)
        if not events:
            return []  # nothing happened that moves estimates (an outbox update, a login, ...)
        self._seen_seq = events[-1].seq
        vets = _vets_touched(events)
        if vets is not None and not vets:
            return []  # an urgent-help press, an unmatched lookup: no queue moved
        return await self.evaluate(tx, events[-1].recorded_at, vets)

    async def evaluate(self, tx: Tx, now: datetime, vets: set[str] | None = None, *,
                       unwritten: bool = False) -> list[int]:
        """Re-estimate today at `now` and queue the texts the policy decides (in `tx`).

        With `vets`, only those vets' queues are re-estimated and re-decided: an event moves
        only its own vet's queue, and the others are re-decided by the periodic tick.
        `unwritten`: `tx` has written nothing yet, so today's state as last read at this same
        store version is still the truth (one process per SQLite file: no other writer).
        """
        # Estimated as of the readers' rounded moment (so they reuse it); decided and queued now.
        at = self._round(now)
        day = self.today(at)
        cached = self._day_cache
        if (unwritten and not self.store.several_processes and cached is not None
                and cached[0] == self.store.version and cached[1] == day):
            state = cached[2]
        else:
            state = await tx.visits_for_day(day)
        est = await self._estimate(state, at, vets)
        self._fresh = (self.store.version, day, state, at, est, vets)
        await record_promises(tx, state, est, now)
        ids: list[int] = []
        if self.texting is not None:
            ids = await queue_delay_texts(tx, state, est, now, self.clinic, self.texting)
        self._queued = self._queued or bool(ids)
        return ids

    def _after_commit(self) -> None:
        if self._fresh is not None:
            version, day, state, now, est, vets = self._fresh
            self._fresh = None
            # What the committed transaction computed is today's truth at the new version:
            # readers reuse it. (One left over from a rolled-back transaction is too old.)
            if self.store.version in (version, version + 1):  # committed (a write-less tick too)
                self._day_cache = (self.store.version, day, state)
                old = self._est_cache
                if vets is None:
                    self._est_cache = (self.store.version, now, est)
                elif old is not None and old[0] in (version, self.store.version) and old[1] == now:
                    # Only these vets' queues moved, and every vet has its own random stream:
                    # the other vets' estimates for this same moment are still exactly right.
                    kept = {vid: e for vid, e in old[2].items()
                            if vid in state.visits and state.visits[vid].vet not in vets}
                    self._est_cache = (self.store.version, now, {**kept, **est})
        if self._queued:
            self._queued = False
            if self.on_texts is not None:
                self.on_texts()

    async def tick(self, now: datetime) -> list[int]:
        """Re-decide texts with no new event: estimates move while a consult runs long."""
        async with self.store.transaction() as tx:
            # A full evaluation covers every event so far, deferred ones included.
            self._seen_seq = await tx.last_event_seq()
            return await self.evaluate(tx, now, unwritten=True)

    async def run_ticks(self, every_s: float = 60.0) -> None:
        """The periodic re-evaluation (a cleanup_ctx task in the server)."""
        assert self.clock is not None
        while True:
            # First right away: after a restart, what is owed is decided without waiting.
            try:
                await self.tick(self.clock())
            except Exception:
                log.exception("periodic text evaluation failed; trying again next time")
            await asyncio.sleep(every_s)


# Events whose effect is confined to the vet(s) they name; any other kind re-evaluates all.
_VET_SCOPED = {"checkin", "start", "end", "noshow", "walkin", "emergency", "emergency_start", "emergency_end",
               "vet_late", "vet_available", "reorder", "consent", "reply", "in_car", "ack", "kiosk_unmatched",
               "urgent", "text_decision"}


def _vets_touched(events: list[LoggedEvent]) -> set[str] | None:
    """The vets whose queues these new events can move, or None when that is not clear."""
    vets: set[str] = set()
    for e in events:
        if e.type not in _VET_SCOPED:
            return None
        if isinstance(e.data.get("vet"), str):
            vets.add(e.data["vet"])
        if e.vet:
            vets.add(e.vet)
    return vets
