"""Wiring the notifier into the server: the outbox worker, the periodic re-evaluation, and
the provider's webhooks with what the server does with a client's reply."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from notifier import links, outbox
from notifier.messages import ClinicInfo
from notifier.providers import make_provider
from notifier.replies import InboundReply, ReplyKind, ReplyOutcome
from notifier.webhooks import Receive, make_receiver, make_webhook_routes
from notifier.worker import Worker, WorkerSettings
from server.errors import BadRequest, Conflict
from server.events import Event, apply_event
from server.http import Handler, read_json, roles
from server.keys import CONFIG, RUNTIME, STORE, WORKER
from server.phones import PhoneError, normalise
from server.store import Tx

log = logging.getLogger("waitroom.sms")


def setup_sms(app: web.Application) -> None:
    """Routes for Twilio's webhooks (when Twilio is the provider), the console provider's way in
    for replies (when it is not), and the background tasks."""
    config = app[CONFIG]

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

    if config.sms_provider == "twilio" and config.twilio_auth_token:
        app.add_routes(make_webhook_routes(
            transaction=transaction, auth_token=config.twilio_auth_token, public_base_url=config.public_url,
            on_reply=on_reply, clinic=clinic, clock=config.clock.now, wake=wake,
            shared_key=config.twilio_shared_key_secret))
    receive = make_receiver(transaction=transaction, on_reply=on_reply, clinic=clinic, clock=config.clock.now,
                            wake=wake)
    app.router.add_post("/api/sms/receive", _console_receive(receive, config.sms_provider == "console"))
    app.cleanup_ctx.append(_notifier_ctx)


MAX_BODY = 1600  # Twilio's longest message body


def _console_receive(receive: Receive, console: bool) -> Handler:
    """POST /api/sms/receive {"from": number, "body": text}: a client's reply as the console
    provider's clinic would get it from Twilio (no provider, so no webhook): it goes through the
    webhook's own code (notifier.webhooks.make_receiver). Reception's token; `waitroom sms
    receive` calls it. Only with the console provider: with Twilio, replies come from Twilio."""

    @roles("reception")
    async def handler(request: web.Request) -> web.Response:
        if not console:
            raise Conflict("this clinic texts through Twilio: replies come from Twilio's webhook, not by hand")
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("body: a JSON object with from and body", "body")
        sender, text = body.get("from"), body.get("body")
        if not isinstance(sender, str) or not sender.strip():
            raise BadRequest("from: the client's phone number", "from")
        if not isinstance(text, str) or len(text) > MAX_BODY:
            raise BadRequest(f"body: the text, up to {MAX_BODY} characters", "body")
        try:
            e164 = normalise(sender, request.app[RUNTIME].clinic.region)
        except PhoneError as e:
            raise BadRequest(f"from: {e}", "from") from None
        sid = "SM" + secrets.token_hex(16)  # as Twilio names a message: SM and 32 hex digits
        handled = await receive({"MessageSid": sid, "From": e164, "To": request.app[RUNTIME].clinic.phone or "",
                                 "Body": text})
        return web.json_response({"sid": sid, "from": e164, "kind": handled.kind.value,
                                  "answers": len(handled.outbox_ids), "for_reception": handled.capped
                                  or handled.kind.value == "other"})

    return handler


async def _notifier_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    rt = app[RUNTIME]
    tasks: list[asyncio.Task[None]] = []
    if config.run_notifier:
        provider = make_provider(
            config.sms_provider, account_sid=config.twilio_account_sid, auth_token=config.twilio_auth_token,
            from_number=config.twilio_from, messaging_service_sid=config.twilio_messaging_service_sid,
            base_url=config.twilio_base_url, public_url=config.public_url, console_links=config.console_sms_links)
        store = app[STORE]
        # Other processes on the same database: adopt what a stopped one left mid-send.
        settings = WorkerSettings(orphan_check_s=5.0) if store.several_processes else None
        worker = Worker(store.transaction, provider, config.clock.now, settings, reader=store.read)
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
    # One text may have named every pet of the household: "1" and "2" answer for each visit we
    # texted about (the first open visit when none was texted).
    if reply.kind in (ReplyKind.KEEP, ReplyKind.RESCHEDULE):
        texted = await outbox.sent_texts(tx, [v.visit_id for v in found])
        concerned = [v.visit_id for v in found if v.visit_id in texted] or [visit_id]
    each: list[tuple[str, str]] = []
    if reply.kind is ReplyKind.KEEP:
        for vid in concerned:
            await apply_event(tx, Event("reply", now, vid, {"kind": "keep"}), "sms", rt.clinic.tz, now)
    elif reply.kind is ReplyKind.RESCHEDULE:
        # A link per visit: each pet's visit is moved (or kept) on its own page.
        for vid in concerned:
            token = links.make_token(config.secret.encode(), vid, now)
            detail = await tx.booking_detail(vid)
            each.append((detail.pet if detail is not None and detail.pet else "your pet",
                         f"{config.public_url.rstrip('/')}/r/{token}"))
            await apply_event(tx, Event("reply", now, vid, {"kind": "reschedule"}), "sms", rt.clinic.tz, now)
        visit_id = concerned[0]
    await rt.after_change(tx)
    return ReplyOutcome(visit_id=visit_id, language=language, link=each[0][1] if each else None, each=tuple(each))
