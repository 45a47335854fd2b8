"""Twilio's webhooks as aiohttp handlers: inbound texts and delivery status callbacks.

Built by a factory given what the server must provide (its transaction, the clock, what
to do with a reply), so the notifier needs nothing from the server package. Every request
must carry a valid X-Twilio-Signature for our *public* URL (behind a proxy the request's
own URL differs), else 403. Twilio signs the URL configured in Twilio: the public URL must
be that URL's scheme and host exactly (a default port may differ); a refusal logs the URL
checked, so a mismatch shows in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from notifier import outbox
from notifier.messages import ClinicInfo
from notifier.replies import HandledReply, Media, OnReply, handle_inbound
from notifier.store import Transaction
from notifier.twilio_signature import SETTINGS_HEADER, SIGNATURE_HEADER, signature_algorithm, validate_signature
from notifier.worker import Clock

log = logging.getLogger("waitroom.notifier")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


Receive = Callable[[dict[str, str]], Awaitable[HandledReply]]


def make_receiver(*, transaction: Transaction, on_reply: OnReply, clinic: Callable[[], ClinicInfo], clock: Clock,
                  wake: Callable[[], None] | None = None, send_optout_confirmation: bool = True) -> Receive:
    """What is done with one inbound text, given as Twilio posts it (MessageSid, From, To, Body,
    MediaUrlN): the webhook once its signature checks out, and the console provider's way in
    for replies (`waitroom sms receive`), so both take the same path."""

    def media(form: dict[str, str]) -> list[Media]:
        # MediaUrl0..N (NumMedia of them, at most 10 in an MMS), each with its content type.
        out = []
        for i in range(10):
            url = form.get(f"MediaUrl{i}")
            if url:
                out.append(Media(url, form.get(f"MediaContentType{i}", "")))
        return out

    async def receive(form: dict[str, str]) -> HandledReply:
        sid = form.get("MessageSid") or form.get("SmsSid")
        sender = form.get("From")
        if not sid or not sender:
            raise web.HTTPBadRequest(text="MessageSid and From are required")
        async with transaction() as tx:
            handled = await handle_inbound(
                tx, provider_sid=sid, from_number=sender, to_number=form.get("To"),
                body=form.get("Body", ""), now=clock(), clinic=clinic(), on_reply=on_reply,
                send_optout_confirmation=send_optout_confirmation, media=media(form))
        if handled.outbox_ids and wake is not None:
            wake()
        return handled

    return receive


def make_webhook_routes(*, transaction: Transaction, auth_token: str, public_base_url: str,
                        on_reply: OnReply, clinic: Callable[[], ClinicInfo], clock: Clock,
                        wake: Callable[[], None] | None = None, prefix: str = "/sms",
                        send_optout_confirmation: bool = True, shared_key: str | None = None) -> list[web.RouteDef]:
    """POST {prefix}/inbound (Twilio's "A message comes in") and POST {prefix}/status
    (StatusCallback; the row id is in the query string, as TwilioProvider sets it)."""
    base = public_base_url.rstrip("/")
    receive = make_receiver(transaction=transaction, on_reply=on_reply, clinic=clinic, clock=clock, wake=wake,
                            send_optout_confirmation=send_optout_confirmation)

    async def checked_form(request: web.Request) -> dict[str, str]:
        form = await request.post()
        params = [(k, v) for k, v in form.items() if isinstance(v, str)]
        url = base + request.path_qs
        settings = request.headers.get(SETTINGS_HEADER)
        if not validate_signature(auth_token, url, params, request.headers.get(SIGNATURE_HEADER),
                                  settings_header=settings, shared_key=shared_key):
            log.warning("webhook %s: bad %s from %s (%s); checked against %s (with and without the default "
                        "port): the URL configured in Twilio must be exactly this - check WAITROOM_PUBLIC_URL%s",
                        request.path, SIGNATURE_HEADER, request.remote, signature_algorithm(settings), url,
                        "" if settings is None or shared_key else
                        "; Twilio signed with a SharedKey: set WAITROOM_TWILIO_SHARED_KEY_SECRET")
            raise web.HTTPForbidden(text="bad signature")
        return dict(params)

    async def inbound(request: web.Request) -> web.Response:
        await receive(await checked_form(request))
        # We answer through the outbox, not TwiML: our answer is then recorded, retried
        # and visible to reception like any other text.
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def status(request: web.Request) -> web.Response:
        form = await checked_form(request)
        try:
            row_id = int(request.query["row"])
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="row is required") from None
        async with transaction() as tx:
            known = await outbox.record_status(tx, row_id, form.get("MessageSid"),
                                               form.get("MessageStatus") or form.get("SmsStatus") or "",
                                               form.get("ErrorCode") or None, clock())
        if not known:
            log.warning("status callback for unknown outbox row %s", row_id)
        return web.Response(status=204)

    return [web.post(f"{prefix}/inbound", inbound), web.post(f"{prefix}/status", status)]
