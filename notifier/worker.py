"""The outbox worker: sends queued texts, never twice, never lost.

Each text: mark it `sending` and COMMIT, then call the provider, then record the answer in
a second transaction. A crash between the provider accepting a text and that second
commit leaves the row `sending`; on start-up such rows are looked up at the provider
(found: recorded as sent; provably absent: queued again), never blindly resent. Timeouts
and 5xx answers are treated the same way: the provider may have created the message, so
the row is looked up before its next attempt. When the lookup itself fails (the provider
is down altogether) the row stays unsure and the lookup is tried again with the same
backoff as a send; only when the text goes stale (or, without a deadline, its attempts
run out) while still unsure is it `held` for reception. Nothing is resent until a lookup
has answered that the provider does not have it.

Runs as an aiohttp background task (`Worker.run`, started in the server's cleanup_ctx)
or alone (`serve(...)`, behind `waitroom notifier --db PATH`). Every database step is a named
operation on the transaction it is given (notifier/store.py); no SQL here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from notifier import outbox
from notifier.outbox import OutboxRow
from notifier.providers import (
    OPTED_OUT_CODES,
    ConsoleProvider,
    PermanentError,
    Provider,
    ProviderError,
    TransientError,
)
from notifier.store import OutboxTx, Transaction

log = logging.getLogger("waitroom.notifier")

# Reads that take no write lock (`store.read`).
Read = Callable[[], AbstractAsyncContextManager[OutboxTx]]
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    batch: int = 50  # rows claimed per transaction
    concurrency: int = 16  # sends in flight at once (Twilio queues per sender itself)
    poll_interval: float = 2.0  # seconds between looks when nobody wakes us
    backoff_base: float = 2.0  # seconds before the first retry, doubling each time
    backoff_max: float = 300.0
    # Asking the provider whether it has a text is a cheap read (and sends nothing): while its
    # lookups fail they are retried at least this often, so texts go out soon after it is back.
    lookup_backoff_max: float = 60.0
    max_attempts: int = 8
    # A row we are unsure of is not called "never sent" until this long after the attempt:
    # the provider's list may lag its create by a moment.
    reconcile_grace: float = 30.0
    # With other processes sending from the same database (PostgreSQL): how often to adopt the
    # rows a stopped one left `sending` (None: one process per database, settled at start-up).
    orphan_check_s: float | None = None


class Worker:
    def __init__(self, transaction: Transaction, provider: Provider, clock: Clock,
                 settings: WorkerSettings | None = None, *, reader: Read | None = None) -> None:
        self.transaction = transaction
        # Where to look, without a write transaction, whether anything is due: the store's
        # reads. An idle worker then takes no lock (two transactions every poll held up
        # the server's writes while a lobby of readers kept its event loop busy).
        self.reader = reader
        self.provider = provider
        self.clock = clock
        self.settings = settings or WorkerSettings()
        self._wake = asyncio.Event()
        # Set when the provider failed (a send or a lookup); the next text it takes clears it
        # and brings every backed-off text forward: after an outage the backoff has grown to
        # minutes, and delay news is worth most the moment it can go out. (A lookup answering
        # is no sign: its list API can be up while creating texts still fails. It does bring
        # forward the texts that were waiting for a lookup.)
        self._provider_failing = False
        self._lookups_failing = False

    def wake(self) -> None:
        """Call after committing new outbox rows, so they go out now rather than at the next poll."""
        self._wake.set()

    # -- start-up ---------------------------------------------------------------------------

    async def reconcile(self) -> int:
        """Settle rows a previous process left `sending`. Returns how many there were."""
        async with self.transaction() as tx:
            stuck = await outbox.stuck_sending(tx)
        for row in stuck:
            await self._settle_unsure(row, at_startup=True)
        return len(stuck)

    async def adopt_orphans(self) -> int:
        """Settle the rows another process left `sending` when it stopped (looked up at the
        provider before any resend, as at start-up). Returns how many there were."""
        async with self.transaction() as tx:
            orphans = await tx.adopt_orphaned_texts()
        for row in orphans:
            log.warning("outbox %d: its sender stopped mid-send: looking it up at the provider", row.id)
            await self._settle_unsure(row, at_startup=True)
        return len(orphans)

    async def _settle_unsure(self, row: OutboxRow, *, at_startup: bool) -> bool:
        """Look `row` up at the provider. True when the caller may send it now: the provider
        provably does not have it and it is not stale. Otherwise the row has been recorded
        (sent, queued for another look, expired or held) and must not be sent."""
        now = self.clock()
        since = row.sending_at or row.created_at
        try:
            found = await self.provider.lookup(row.to_number, row.body, since)
        except ProviderError as e:
            await self._lookup_failed(row, now, since, str(e) or type(e).__name__)
            return False
        except Exception as e:  # a bug in a provider: it did not answer, so we still cannot tell
            log.exception("outbox %d: unexpected error from the provider's lookup", row.id)
            await self._lookup_failed(row, now, since, repr(e))
            return False
        if self._lookups_failing:
            self._lookups_failing = False
            await self._retry_waiting("lookup")
        async with self.transaction() as tx:
            if found is not None:
                log.info("outbox %d: found at the provider as %s: not sending again", row.id, found.sid)
                await outbox.mark_sent(tx, row.id, found.sid, found.status, now)
                return False
            if (now - since).total_seconds() < self.settings.reconcile_grace:
                # Absent for now, but the provider's list may lag its create: look again after the grace.
                at = since + timedelta(seconds=self.settings.reconcile_grace)
                await outbox.mark_retry(tx, row.id, now, at, "reconcile", "not found at the provider yet",
                                        uncertain=True)
                return False
            if row.expires_at is not None and now >= row.expires_at:
                await outbox.mark_failed(tx, row.id, now, "expired", "not sent in time: the news was stale "
                                                                       "(the provider has no copy of it)")
                return False
            if at_startup:
                await outbox.mark_retry(tx, row.id, now, now, "reconcile", "not found at the provider",
                                        uncertain=False)
                return False
            await outbox.mark_resending(tx, row.id, now)
        return True

    async def _lookup_failed(self, row: OutboxRow, now: datetime, since: datetime, error: str) -> None:
        """The provider could not say whether it has `row`: keep it unsure and ask again later.

        Resending could text the client twice, so nothing is sent until a lookup answers.
        Once the text is stale (or, without a deadline, its attempts are used up) it is held:
        reception decides, with the client in front of them."""
        self._provider_failing = self._lookups_failing = True
        stale = row.expires_at is not None and now >= row.expires_at
        spent = row.expires_at is None and row.attempts >= self.settings.max_attempts
        async with self.transaction() as tx:
            if stale or spent:
                why = (f"the text went stale at {_hhmm(row.expires_at)}" if row.expires_at is not None
                       else f"the worker gave up after {row.attempts} attempts at {_hhmm(now)}")
                log.warning("outbox %d: cannot tell whether it was sent (%s): held for reception", row.id, error)
                await outbox.mark_held(tx, row.id, now,
                                       f"may or may not have been sent; the provider could not be asked until "
                                       f"{why} (unsure since {_hhmm(since)}; last error: {error})")
                return
            at = now + timedelta(seconds=min(self._backoff(row.attempts), self.settings.lookup_backoff_max))
            if row.expires_at is not None:
                at = min(at, row.expires_at)  # one last look when it goes stale, not up to a backoff later
            log.info("outbox %d: cannot tell whether it was sent (%s), asking again at %s", row.id, error,
                     at.isoformat())
            await outbox.mark_retry(tx, row.id, now, at, "lookup",
                                    f"may have been sent; the provider could not be asked: {error}",
                                    uncertain=True, count_attempt=True)

    def _backoff(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` tries: doubling from the base, capped."""
        return min(self.settings.backoff_max, self.settings.backoff_base * 2.0 ** min(max(0, attempts - 1), 30))

    # -- sending ----------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Send what is due now. Returns the number of rows handled."""
        if self.reader is not None:
            async with self.reader() as q:
                due = await outbox.next_due(q)
            if due is None or due > self.clock():
                return 0
        async with self.transaction() as tx:
            claimed = await outbox.claim_due(tx, self.clock(), self.settings.batch)
        if not claimed:
            return 0
        sem = asyncio.Semaphore(self.settings.concurrency)

        async def one(row: OutboxRow) -> None:
            async with sem:
                await self._send(row)

        await asyncio.gather(*(one(r) for r in claimed))
        return len(claimed)

    async def _send(self, row: OutboxRow) -> None:
        if row.uncertain:
            if not await self._settle_unsure(row, at_startup=False):
                return
            row = replace(row, attempts=row.attempts + 1)  # as mark_resending counted it
        try:
            sent = await self.provider.send(row.to_number, row.body, row.id)
        except PermanentError as e:
            log.warning("outbox %d: failed for good (%s %s)", row.id, e.code, e)
            async with self.transaction() as tx:
                await outbox.mark_failed(tx, row.id, self.clock(), e.code, str(e))
                if e.code in OPTED_OUT_CODES:
                    await outbox.record_carrier_opt_out(tx, row, self.clock())
            return
        except TransientError as e:
            await self._retry(row, e.code, str(e), e.retry_after, maybe_sent=e.maybe_sent)
            return
        except Exception as e:  # a bug in a provider: we cannot know whether it sent
            log.exception("outbox %d: unexpected error from the provider", row.id)
            await self._retry(row, "internal", repr(e), None, maybe_sent=True)
            return
        async with self.transaction() as tx:
            await outbox.mark_sent(tx, row.id, sent.sid, sent.status, self.clock())
        await self._provider_answered()

    async def _provider_answered(self) -> None:
        """The provider took a text: if it had been failing, retry every backed-off text now."""
        if self._provider_failing:
            self._provider_failing = False
            await self._retry_waiting(None)

    async def _retry_waiting(self, code: str | None) -> None:
        async with self.transaction() as tx:
            n = await outbox.retry_waiting_now(tx, self.clock(), only_code=code)
        if n:
            log.info("the provider answers again: %d waiting texts retried now", n)
            self.wake()

    async def _retry(self, row: OutboxRow, code: str | None, message: str, retry_after: float | None,
                     *, maybe_sent: bool) -> None:
        now = self.clock()
        self._provider_failing = True
        # A text that says when it goes stale (every delay text) is tried until then: a provider
        # outage of a few minutes must not use up its attempts while the news is still true.
        fresh = row.expires_at is not None and now < row.expires_at
        async with self.transaction() as tx:
            if row.attempts >= self.settings.max_attempts and not fresh:
                if maybe_sent:
                    await outbox.mark_held(tx, row.id, now, f"gave up after {row.attempts} attempts, "
                                                              f"the last may have gone out: {message}")
                else:
                    await outbox.mark_failed(tx, row.id, now, code, f"gave up after {row.attempts} "
                                                                      f"attempts: {message}")
                return
            delay = self._backoff(row.attempts)
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.settings.backoff_max))
            log.info("outbox %d: %s (%s), retry in %.1f s", row.id, code, message, delay)
            await outbox.mark_retry(tx, row.id, now, now + timedelta(seconds=delay), code, message,
                                    uncertain=maybe_sent)

    async def _sleep_until_due(self) -> None:
        if self.reader is not None:
            async with self.reader() as q:
                due = await outbox.next_due(q)
        else:
            async with self.transaction() as tx:
                due = await outbox.next_due(tx)
        timeout = self.settings.poll_interval
        if due is not None:
            timeout = min(timeout, max(0.0, (due - self.clock()).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def run(self) -> None:
        """Reconcile, then send forever (until cancelled). Errors are logged, never fatal."""
        await self.reconcile()
        every = self.settings.orphan_check_s
        next_check = time.monotonic() + every if every is not None else None
        while True:
            try:
                if every is not None and next_check is not None and time.monotonic() >= next_check:
                    next_check = time.monotonic() + every
                    if await self.adopt_orphans():
                        self.wake()
                while await self.run_once():
                    pass
                await self._sleep_until_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database was busy or a bug: keep the worker alive, try again soon.
                log.exception("notifier worker: error, retrying")
                await asyncio.sleep(self.settings.poll_interval)


async def run_worker(transaction: Transaction, provider: Provider, clock: Clock,
                     settings: WorkerSettings | None = None, *, worker: Worker | None = None) -> None:
    """Run the worker until cancelled (an aiohttp cleanup_ctx task)."""
    w = worker or Worker(transaction, provider, clock, settings)
    try:
        await w.run()
    finally:
        await provider.close()


def _hhmm(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%H:%M UTC")


# -- alone ----------------------------------------------------------------------------------

async def serve(transaction: Transaction, read: Read | None = None, provider: Provider | None = None,
                settings: WorkerSettings | None = None) -> None:
    """The worker alone (`waitroom notifier`), on a store the caller opened and migrated."""
    w = Worker(transaction, provider or ConsoleProvider(), lambda: datetime.now(UTC), settings, reader=read)
    await run_worker(transaction, w.provider, w.clock, settings, worker=w)
