"""What the notifier needs from a database, as a protocol: the server's store implements it.

The notifier imports nothing from `server`, so it names here the operations it calls (on the
transaction the server hands it: `async with store.transaction() as tx`) and the server's
store backends (server/store/) provide them. No SQL lives in the notifier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from notifier.outbox import NewText, OutboxRow
    from notifier.policy import SentText
    from notifier.recovery import RecoveryOffer


class OutboxTx(Protocol):
    """The outbox (every text we mean to send, one row each) and the numbers that opted out."""

    async def outbox_row(self, row_id: int) -> OutboxRow | None: ...

    async def outbox_rows(self, *, status: str | None = None, visit_id: str | None = None) -> list[OutboxRow]:
        """Rows, oldest first, optionally of one status and/or one visit."""
        ...

    async def insert_texts(self, texts: Iterable[NewText], now: datetime) -> list[int]:
        """Queue texts; one whose dedupe key is already in the outbox is skipped. New row ids."""
        ...

    async def sent_texts(self, visit_ids: Iterable[str] | None, kinds: Iterable[str]) -> dict[str, list[SentText]]:
        """The texts of these kinds queued so far per visit (any status), oldest first; one that
        went stale unsent (failed, code `expired`) has `reached` False."""
        ...

    async def due_texts(self, now: datetime, limit: int) -> list[OutboxRow]:
        """Queued rows due at `now`, soonest first."""
        ...

    async def next_text_due_at(self) -> datetime | None:
        """When the soonest queued row is due (None: nothing queued)."""
        ...

    async def mark_text_sending(self, row_id: int, now: datetime) -> None:
        """Claimed for a send: one more attempt (not for a row we are unsure of, which keeps
        the time of the attempt that may have gone out)."""
        ...

    async def adopt_orphaned_texts(self) -> list[OutboxRow]:
        """Rows left `sending` by another process that has since stopped (killed, crashed) while
        this one runs, now this process's to settle; each is adopted by one process only. A
        backend with one sending process per database answers [] (its start-up reconcile settles
        what a stopped predecessor left)."""
        ...

    async def mark_text_sent(self, row_id: int, provider_sid: str, provider_status: str | None,
                             now: datetime) -> None:
        """The provider took it (a status callback's "delivered" that came first is kept)."""
        ...

    async def mark_text_retry(self, row_id: int, now: datetime, at: datetime, code: str | None, message: str,
                              *, uncertain: bool, count_attempt: bool) -> None: ...

    async def retry_waiting_texts_now(self, now: datetime, only_code: str | None) -> int:
        """Backed-off rows (not those waiting out a reconcile grace) brought forward to `now`."""
        ...

    async def mark_text_resending(self, row_id: int, now: datetime) -> None: ...

    async def mark_text_failed(self, row_id: int, now: datetime, code: str | None, message: str) -> None: ...

    async def mark_text_held(self, row_id: int, now: datetime, message: str) -> None: ...

    async def set_text_status(self, row_id: int, status: str, provider_sid: str | None, provider_status: str,
                              error_code: str | None, now: datetime) -> None:
        """Record a delivery status callback's outcome (the notifier decides `status`)."""
        ...

    async def requeue_text(self, row_id: int, now: datetime) -> None:
        """Reception's resend: queued again now, sure, with no deadline."""
        ...

    async def dismiss_failed_text(self, row_id: int, now: datetime, settled_codes: Iterable[str]) -> bool:
        """A failed row not yet settled gets code `dismissed`; False otherwise."""
        ...

    async def opted_out(self, numbers: Iterable[str]) -> set[str]:
        """Which of these numbers have opted out."""
        ...

    async def record_opt_out(self, number: str, source: str, now: datetime, keep_kinds: Iterable[str]) -> bool:
        """Never text `number` again: queued and held rows for it (but `keep_kinds`) fail. True if new."""
        ...

    async def record_opt_in(self, number: str) -> bool: ...

    async def texts_to_number_since(self, number: str, since: datetime, dedupe_prefix: str) -> int:
        """How many rows whose dedupe key starts with `dedupe_prefix` were queued for `number`
        since `since` (indexed: it runs for every inbound text)."""
        ...


class InboxTx(Protocol):
    """Texts from clients, reschedule links used and recovery gestures offered."""

    async def record_inbound(self, provider_sid: str, from_number: str, to_number: str | None, body: str,
                             kind: str, needs_reception: bool, now: datetime) -> bool:
        """Keep an inbound text; False if its provider id was seen before (a webhook retry)."""
        ...

    async def set_inbound_visit(self, provider_sid: str, visit_id: str, kind: str) -> None: ...

    async def record_inbound_media(self, provider_sid: str, media: Sequence[tuple[str, str]]) -> None:
        """An MMS's pictures: (url, content type) each, in the order sent."""
        ...

    async def send_inbound_to_reception(self, provider_sid: str) -> None:
        """Put an inbound text in reception's inbox (nobody answered it automatically)."""
        ...

    async def reception_inbox(self, include_handled: bool) -> list[dict[str, object]]:
        """Texts a person must answer, oldest first (id, provider_sid, from_number, body, visit_id,
        received_at, handled_at, media: [(url, content type)])."""
        ...

    async def mark_inbound_handled(self, inbound_id: int, now: datetime) -> bool: ...

    async def inbound_sender(self, inbound_id: int) -> tuple[str, str | None] | None:
        """(the number it came from, the visit it was matched to) of an inbound text."""
        ...

    async def link_used_at(self, nonce: str) -> datetime | None: ...

    async def record_link_use(self, nonce: str, visit_id: str, now: datetime) -> None: ...

    async def record_recovery_offer(self, offer: RecoveryOffer, now: datetime) -> bool:
        """One per visit: False if the visit had one already."""
        ...

    async def recovery_offers(self, visit_ids: list[str]) -> dict[str, RecoveryOffer]: ...


class LogTx(Protocol):
    """The clinic's event log, for the changes the notifier itself makes (a carrier's opt-out)."""

    async def record_event(self, type: str, at: datetime, appointment: str | None, data: dict[str, Any],
                           actor: str, now: datetime) -> int:
        """Append to the log in the transaction of the change it describes; its sequence number."""
        ...


class NotifierTx(OutboxTx, InboxTx, LogTx, Protocol):
    """Everything the notifier asks of one transaction."""


#: `store.transaction`: a serialised write transaction.
Transaction = Callable[[], AbstractAsyncContextManager[NotifierTx]]
