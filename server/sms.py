"""Wiring the notifier into the server: the outbox worker, the periodic re-evaluation, and
the provider's webhooks with what the server does with a client's reply."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from notifier import links, outbox
from notifier.messages import ClinicInfo
from notifier.providers import make_provider
from notifier.replies import InboundReply, ReplyKind, ReplyOutcome
from notifier.webhooks import make_webhook_routes
from notifier.worker import Worker
from server.events import Event, apply_event
from server.keys import CONFIG, RUNTIME, STORE, WORKER
from server.store import Tx

log = logging.getLogger("waitroom.sms")



def setup_sms(app: web.Application) -> None:
    """Routes for Twilio's webhooks (when Twilio is the provider) and the background tasks."""
    config = app[CONFIG]
    if config.sms_provider == "twilio" and config.twilio_auth_token:

        def transaction() -> contextlib.AbstractAsyncContextManager[Tx]:
            return app[STORE].transaction()

        def clinic() -> ClinicInfo:
            c = app[RUNTIME].clinic
            return ClinicInfo(c.name, c.phone)

        def wake() -> None:
            if WORKER in app:
                app[WORKER].wake()

        async def on_reply(tx: Tx, reply: InboundReply) -> ReplyOutcome:
            return await _on_reply(app, tx, reply)

        app.add_routes(make_webhook_routes(
            transaction=transaction, auth_token=config.twilio_auth_token, public_base_url=config.public_url,
            on_reply=on_reply, clinic=clinic, clock=config.clock.now, wake=wake,
            shared_key=config.twilio_shared_key_secret))
    app.cleanup_ctx.append(_notifier_ctx)


async def _notifier_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    rt = app[RUNTIME]
    tasks: list[asyncio.Task[None]] = []
    if config.run_notifier:
        provider = make_provider(
            config.sms_provider, account_sid=config.twilio_account_sid, auth_token=config.twilio_auth_token,
            from_number=config.twilio_from, messaging_service_sid=config.twilio_messaging_service_sid,
            base_url=config.twilio_base_url, public_url=config.public_url, console_links=config.console_sms_links)
        worker = Worker(app[STORE].transaction, provider, config.clock.now, reader=app[STORE].read)
        app[WORKER] = worker
        rt.on_texts = worker.wake
        tasks.append(asyncio.create_task(_run_worker(worker)))
        tasks.append(asyncio.create_task(rt.run_ticks(config.text_tick_s)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _run_worker(worker: Worker) -> None:
    try:
        await worker.run()
    finally:
        await worker.provider.close()


async def _on_reply(app: web.Application, tx: Any, reply: InboundReply) -> ReplyOutcome:
    """Find the client's visit today by their number; keep their place, or send the link."""
    rt = app[RUNTIME]
    config = app[CONFIG]
    now = reply.received_at
    found = await tx.open_visits_for_mobile(reply.from_number, rt.today(now))
    if reply.kind in (ReplyKind.OPT_OUT, ReplyKind.OPT_IN):
        # The client's decision about texts is a change like any other: in the log, in the
        # transaction that records it (the number's last four digits only: the log is no phone book).
        kind = "optout" if reply.kind is ReplyKind.OPT_OUT else "optin"
        await apply_event(tx, Event("reply", now, found[0].visit_id if found else None,
                                    {"kind": kind, "phone_last4": reply.from_number[-4:]}), "sms", rt.clinic.tz, now)
    if not found:
        return ReplyOutcome()
    visit_id, language = found[0].visit_id, found[0].language
    link = None
    if reply.kind is ReplyKind.KEEP:
        # One text may have named every pet of the household: "1" keeps the place of each
        # visit we texted about (the first open visit when none was texted).
        texted = await outbox.sent_texts(tx, [v.visit_id for v in found])
        for vid in [v.visit_id for v in found if v.visit_id in texted] or [visit_id]:
            await apply_event(tx, Event("reply", now, vid, {"kind": "keep"}), "sms", rt.clinic.tz, now)
    elif reply.kind is ReplyKind.RESCHEDULE:
        token = links.make_token(config.secret.encode(), visit_id, now)
        link = f"{config.public_url.rstrip('/')}/r/{token}"
        await apply_event(tx, Event("reply", now, visit_id, {"kind": "reschedule"}), "sms", rt.clinic.tz, now)
    await rt.after_change(tx)
    return ReplyOutcome(visit_id=visit_id, language=language, link=link)
