"""The running clinic: the store, the learned model and today's estimates, kept in step.

The API handlers and the replay both go through `ClinicRuntime.post_event` and
`ClinicRuntime.estimates`, so what the scorer measures is what clients are told.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date, datetime, timedelta

from server.domain import DayState, Estimate
from server.estimator import estimate
from server.events import Event, apply_event
from server.learning import Model, learn
from server.store import Clinic, Store, booked_lengths, load_day, load_history

log = logging.getLogger("waitroom.runtime")


class ClinicRuntime:
    """Holds what is derived from the store, recomputed only when the store changed."""

    def __init__(self, store: Store, clinic: Clinic, *, estimate_granularity_s: float = 10.0) -> None:
        self.store = store
        self.clinic = clinic
        self.model: Model | None = None
        self._granularity = estimate_granularity_s
        self._day_cache: tuple[int, date, DayState] | None = None
        self._est_cache: tuple[int, datetime, dict[str, Estimate]] | None = None
        # One computation at a time: after a write, a lobby of readers would otherwise all miss
        # the cache together (each awaits the day's state) and each run the estimator.
        self._est_lock = asyncio.Lock()
        self._day_lock = asyncio.Lock()

    @classmethod
    async def start(cls, store: Store, today: date, **kw: float) -> ClinicRuntime:
        rt = cls(store, await store.clinic(), **kw)
        await rt.relearn(today)
        return rt

    async def reload_clinic(self) -> None:
        self.clinic = await self.store.clinic()
        self._day_cache = self._est_cache = None

    async def relearn(self, today: date) -> Model:
        """Learn the clinic from every finished day before `today`."""
        t0 = time.perf_counter()
        history = await load_history(self.store.conn, today)
        self.model = learn(history, await booked_lengths(self.store.conn))
        self._est_cache = None
        log.info("learned from %d past visits in %.0f ms", len(history), 1000 * (time.perf_counter() - t0))
        return self.model

    def today(self, now: datetime) -> date:
        return now.astimezone(self.clinic.tz).date()

    async def day_state(self, day: date) -> DayState:
        cached = self._day_cache
        if cached and cached[0] == self.store.version and cached[1] == day:
            return cached[2]
        async with self._day_lock:
            version = self.store.version
            cached = self._day_cache
            if cached and cached[0] == version and cached[1] == day:
                return cached[2]
            state = await load_day(self.store.conn, day)
            self._day_cache = (version, day, state)
            return state

    async def estimates(self, now: datetime, *, exact: bool = False) -> dict[str, Estimate]:
        """Every pending visit's estimate at `now`.

        Served answers round `now` down to the granularity, so a busy lobby of readers costs
        one computation per event or per few seconds, and an estimate does not jitter
        between two refreshes. `exact` (the replay) answers for the very moment asked.
        """
        if not exact and self._granularity > 0:
            epoch = now.timestamp()
            now = now - timedelta(seconds=epoch % self._granularity)
        cached = self._est_cache
        if cached and cached[0] == self.store.version and cached[1] == now:
            return cached[2]
        async with self._est_lock:
            version = self.store.version
            cached = self._est_cache
            if cached and cached[0] == version and cached[1] == now:
                return cached[2]
            state = await self.day_state(self.today(now))
            result = estimate(state, now, self.model)
            # Stamped with the version read before loading: a write meanwhile makes it stale at once.
            self._est_cache = (version, now, result)
            return result

    async def post_event(self, ev: Event, actor: str, now: datetime) -> int:
        """Validate, apply and commit one event; durable before this returns."""
        async with self.store.transaction() as conn:
            return await apply_event(conn, ev, actor, self.clinic.tz, now)
