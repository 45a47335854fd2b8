"""One clinic's sync loop: keeps today's and the next days' bookings in step with the practice
system, and writes arrivals back.

Each round: a full read of the window (today .. today + `days`) at start, every `full_every`
and when the clinic's day changes; in between, the system's change feed (ezyVet's
`modified_at`) every `interval` seconds, or a webhook's nudge (Provet); then our new events
become write-backs and the due write-backs are sent. What happened (last sync, counts, the
last error in words) is kept in the store for the console. A round that fails keeps nothing
half-done (each apply is one transaction) and the next round, after a growing pause, tries
again: the cursor only moves when a round's changes are in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from server.connectors.core import (
    Booking,
    Connector,
    SyncRefused,
    SyncResult,
    apply_bookings,
    drain_write_backs,
    queue_write_backs,
)
from server.connectors.http import AuthError, ConnectorError
from server.store import Store

log = logging.getLogger("waitroom.connectors")


@dataclass(slots=True)
class LoopSettings:
    days: int = 2  # today and the next two days
    interval_s: float = 30.0  # "within a minute of the change"
    full_every_s: float = 15 * 60.0
    max_pause_s: float = 600.0


@dataclass(slots=True)
class SyncLoop:
    store: Store
    connector: Connector
    settings: LoopSettings = field(default_factory=LoopSettings)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pending_ids: set[str] = field(default_factory=set)  # named by webhooks, fetched next round
    _last_full_mono: float | None = None
    _last_full_day: date | None = None
    failures: int = 0

    def nudge(self, pms_id: str | None = None) -> None:
        """A webhook said something changed (`pms_id`, when it named an appointment)."""
        if pms_id is not None and len(self.pending_ids) < 10_000:
            self.pending_ids.add(pms_id)
        self.wake.set()

    async def _window(self) -> tuple[date, date, datetime, datetime]:
        clinic = await self.store.clinic()
        today = self.clock().astimezone(clinic.tz).date()
        last = today + timedelta(days=self.settings.days)
        start = datetime.combine(today, datetime.min.time(), clinic.tz)
        end = datetime.combine(last + timedelta(days=1), datetime.min.time(), clinic.tz)
        return today, last, start, end

    async def sync_full(self) -> SyncResult:
        today, last, start, end = await self._window()
        clinic = await self.store.clinic()
        forget = getattr(self.connector, "forget_names", None)
        if forget is not None and self._last_full_day is not None and self._last_full_day != today:
            forget()  # a new day: names and mobiles are looked up afresh
        unreadable: set[str] = getattr(self.connector, "unreadable", set())
        unreadable.clear()
        bookings = await self.connector.fetch_window(start, end)
        result = await apply_bookings(self.store, self.connector.name, self.connector.label, bookings, clinic,
                                      self.clock(), window=(today, last), also_listed=set(unreadable),
                                      problems=self._problems())
        self._last_full_mono = time.monotonic()
        self._last_full_day = today
        async with self.store.transaction() as tx:
            state = await tx.pms_state(self.connector.name)
            state.last_full_at = self.clock()
            hint = getattr(self.connector, "cursor_hint", None)
            if hint is not None:
                state.cursor = hint
            await tx.save_pms_state(state)
        return result

    async def sync_changes(self) -> SyncResult | None:
        """The change feed since the cursor; None when there is none (then a full read is due)."""
        async with self.store.read() as q:
            state = await q.pms_state(self.connector.name)
        answer = await self.connector.fetch_changes(state.cursor)
        if answer is None:
            return None
        bookings, cursor = answer
        result = await self._apply_some(bookings)
        async with self.store.transaction() as tx:
            state = await tx.pms_state(self.connector.name)
            state.cursor = cursor
            await tx.save_pms_state(state)
        return result

    async def sync_named(self) -> SyncResult:
        """The appointments webhooks named since the last round."""
        ids, self.pending_ids = sorted(self.pending_ids), set()
        try:
            bookings: list[Booking] = []
            for pms_id in ids:
                found = await self.connector.fetch_one(pms_id)
                if found is None:  # deleted there
                    bookings.append(Booking(pms_id, self.clock(), 1.0, "", "", cancelled=True))
                else:
                    bookings.append(found)
            return await self._apply_some(bookings)
        except BaseException:
            self.pending_ids |= set(ids)  # asked again next round: a failed fetch loses no webhook
            raise

    async def _apply_some(self, bookings: list[Booking]) -> SyncResult:
        """Changed bookings: those in the window, and those we hold (moved out of it, or cancelled)."""
        _, _, start, end = await self._window()
        keep = []
        async with self.store.read() as q:
            for b in bookings:
                if (not b.cancelled and start <= b.scheduled < end) or await q.visit(f"{self.connector.name}:{b.id}"):
                    keep.append(b)
        clinic = await self.store.clinic()
        result = await apply_bookings(self.store, self.connector.name, self.connector.label, keep, clinic,
                                      self.clock(), problems=self._problems())
        result.fetched = len(bookings)
        return result

    def _problems(self) -> list[str]:
        """The connector's words for what it could not read since the last call."""
        problems: list[str] = getattr(self.connector, "problems", [])
        out = list(problems)
        problems.clear()
        return out

    def _full_due(self, today: date) -> bool:
        return (self._last_full_mono is None or self._last_full_day != today
                or time.monotonic() - self._last_full_mono >= self.settings.full_every_s)

    async def round(self) -> SyncResult:
        """One round (see the module doc); raises ConnectorError / SyncRefused after recording it."""
        began = time.monotonic()
        requests_before = self.connector.request_count()
        phase = "changes"
        await self._mark(last_attempt_at=self.clock())
        result: SyncResult | None = None
        failed: ConnectorError | SyncRefused | None = None
        try:
            today, *_ = await self._window()
            if self.pending_ids:
                phase = "webhook"
                result = await self.sync_named()
            if self._full_due(today):
                phase = "full"
                result = await self.sync_full()
            elif result is None:
                result = await self.sync_changes()
                if result is None:
                    phase = "full"
                    result = await self.sync_full()
        except (ConnectorError, SyncRefused) as e:
            failed = e
        # Write-backs go on when reading failed (an arrival need not wait for a 5xx storm on
        # the list endpoint to pass: each row has its own retries) - but not with credentials
        # refused, which would fail every row for a cause reception cannot fix row by row.
        await queue_write_backs(self.store, self.connector.name, self.clock())
        if not isinstance(failed, AuthError):
            await drain_write_backs(self.store, self.connector, self.clock())
        if failed is not None or result is None:
            self.failures += 1
            await self._mark(last_error=str(failed)[:500], progress={"phase": phase, "failed": True,
                                                                      "requests": self.connector.request_count()
                                                                      - requests_before})
            raise failed or ConnectorError(f"{self.connector.label}: nothing read")
        self.failures = 0
        result.requests = self.connector.request_count() - requests_before
        await self._mark(last_ok_at=self.clock(), last_error=None, progress={
            "phase": phase, "fetched": result.fetched, "imported": result.imported, "cancelled": result.cancelled,
            "arrived": result.arrived,
            "skipped": result.skipped[:20], "kept": result.kept[:20], "requests": result.requests,
            "seconds": round(time.monotonic() - began, 2)})
        return result

    async def _mark(self, **changes: Any) -> None:
        async with self.store.transaction() as tx:
            state = await tx.pms_state(self.connector.name)
            for key, value in changes.items():
                setattr(state, key, value)
            await tx.save_pms_state(state)

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until `stop` is set: every `interval_s`, sooner when nudged, later after failures."""
        while not stop.is_set():
            # Cleared before the round, not after: a webhook arriving during a round starts the
            # next one at once instead of waiting out the interval.
            self.wake.clear()
            try:
                result = await self.round()
                log.info("%s: sync %s", self.connector.name, result.summary())
                pause = self.settings.interval_s
            except (ConnectorError, SyncRefused) as e:
                log.warning("%s: sync failed: %s", self.connector.name, e)
                pause = min(self.settings.interval_s * 2 ** self.failures, self.settings.max_pause_s)
            except Exception as e:  # a bug or an answer nobody foresaw: logged in full, shown, retried
                log.exception("%s: sync round failed unexpectedly", self.connector.name)
                self.failures += 1
                await self._mark(last_error=f"unexpected error ({type(e).__name__}): {e}"[:500])
                pause = min(self.settings.interval_s * 2 ** self.failures, self.settings.max_pause_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
                    try:
                        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for w in waits:
                            w.cancel()
