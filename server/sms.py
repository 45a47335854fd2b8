"""Wiring the notifier into the server: the provider's webhooks, per clinic, with what the server
does with a client's reply (each clinic's outbox worker and periodic re-evaluation are started
with the clinic, server/site.py)."""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import Any

from aiohttp import web

from notifier import links, outbox
from notifier.messages import ClinicInfo
from notifier.replies import InboundReply, ReplyKind, ReplyOutcome
from notifier.webhooks import Receive, make_receiver, make_webhook_routes
from server.errors import BadRequest, Conflict
from server.events import Event, apply_event
from server.http import Handler, read_json, roles, site
from server.keys import CONFIG, WORKER
from server.phones import PhoneError, normalise
from server.site import ClinicSite
from server.store import Tx

log = logging.getLogger("waitroom.sms")

__all__ = ["WORKER", "setup_sms"]  # WORKER: a single clinic's worker, as tests hold it


def setup_sms(app: web.Application) -> None:
    """Routes for Twilio's webhooks (when Twilio is the provider) and the console provider's way
    in for replies (when it is not). Each request is answered by its own clinic's receiver
    (server/site.py: the clinic of the Host, or of the token), built on first use."""
    config = app[CONFIG]
    if config.sms_provider == "twilio" and config.twilio_auth_token:
        for path in ("/sms/inbound", "/sms/status"):
            app.router.add_post(path, _per_clinic_webhook(path))
    app.router.add_post("/api/sms/receive", _console_receive(config.sms_provider == "console"))


def _clinic_handlers(clinic: ClinicSite) -> dict[str, Any]:
    """The notifier's webhook handlers and receiver bound to one clinic (its store, its name and
    phone, its worker, its public address for Twilio's signature)."""
    if clinic.handlers:
        return clinic.handlers
    config = clinic.config

    def transaction() -> contextlib.AbstractAsyncContextManager[Tx]:
        return clinic.store.transaction()

    def info() -> ClinicInfo:
        c = clinic.runtime.clinic
        return ClinicInfo(c.name, c.phone)

    def wake() -> None:
        if clinic.worker is not None:
            clinic.worker.wake()

    async def on_reply(tx: Tx, reply: InboundReply) -> ReplyOutcome:
        return await _on_reply(clinic, tx, reply)

    handlers: dict[str, Any] = {}
    if config.sms_provider == "twilio" and config.twilio_auth_token:
        for route in make_webhook_routes(
                transaction=transaction, auth_token=config.twilio_auth_token, public_base_url=config.public_url,
                on_reply=on_reply, clinic=info, clock=config.clock.now, wake=wake,
                shared_key=config.twilio_shared_key_secret):
            assert isinstance(route, web.RouteDef)
            handlers[route.path] = route.handler
    handlers["receive"] = make_receiver(transaction=transaction, on_reply=on_reply, clinic=info,
                                        clock=config.clock.now, wake=wake)
    clinic.handlers.update(handlers)
    return clinic.handlers


def _per_clinic_webhook(path: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        answer: web.StreamResponse = await _clinic_handlers(site(request))[path](request)
        return answer

    return handler


MAX_BODY = 1600  # Twilio's longest message body


def _console_receive(console: bool) -> Handler:
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
            e164 = normalise(sender, site(request).runtime.clinic.region)
        except PhoneError as e:
            raise BadRequest(f"from: {e}", "from") from None
        sid = "SM" + secrets.token_hex(16)  # as Twilio names a message: SM and 32 hex digits
        receive: Receive = _clinic_handlers(site(request))["receive"]
        handled = await receive({"MessageSid": sid, "From": e164, "To": site(request).runtime.clinic.phone or "",
                                 "Body": text})
        return web.json_response({"sid": sid, "from": e164, "kind": handled.kind.value,
                                  "answers": len(handled.outbox_ids), "for_reception": handled.capped
                                  or handled.kind.value == "other"})

    return handler


async def _on_reply(clinic: ClinicSite, tx: Any, reply: InboundReply) -> ReplyOutcome:
    """Find the client's visit today by their number; keep their place, or send the link."""
    rt = clinic.runtime
    config = clinic.config
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
