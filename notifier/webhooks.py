"""Twilio's webhooks as aiohttp handlers: inbound texts and delivery status callbacks.

Built by a factory given what the server must provide (its transaction, the clock, what
to do with a reply), so the notifier needs nothing from the server package. Every request
must carry a valid X-Twilio-Signature for our *public* URL (behind a proxy the request's
own URL differs), else 403.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from notifier import outbox
from notifier.messages import ClinicInfo
from notifier.replies import OnReply, handle_inbound
from notifier.store import Transaction
from notifier.twilio_signature import validate_signature
from notifier.worker import Clock

log = logging.getLogger("waitroom.notifier")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def make_webhook_routes(*, transaction: Transaction, auth_token: str, public_base_url: str,
                        on_reply: OnReply, clinic: Callable[[], ClinicInfo], clock: Clock,
                        wake: Callable[[], None] | None = None, prefix: str = "/sms",
                        send_optout_confirmation: bool = True) -> list[web.RouteDef]:
    """POST {prefix}/inbound (Twilio's "A message comes in") and POST {prefix}/status
    (StatusCallback; the row id is in the query string, as TwilioProvider sets it)."""
    base = public_base_url.rstrip("/")

    async def checked_form(request: web.Request) -> dict[str, str]:
        form = await request.post()
        params = [(k, v) for k, v in form.items() if isinstance(v, str)]
        if not validate_signature(auth_token, base + request.path_qs, params,
                                  request.headers.get("X-Twilio-Signature")):
            log.warning("webhook %s: bad X-Twilio-Signature from %s", request.path, request.remote)
            raise web.HTTPForbidden(text="bad signature")
        return dict(params)

    async def inbound(request: web.Request) -> web.Response:
        form = await checked_form(request)
        sid = form.get("MessageSid") or form.get("SmsSid")
        sender = form.get("From")
        if not sid or not sender:
            raise web.HTTPBadRequest(text="MessageSid and From are required")
        async with transaction() as tx:
            handled = await handle_inbound(
                tx, provider_sid=sid, from_number=sender, to_number=form.get("To"),
                body=form.get("Body", ""), now=clock(), clinic=clinic(), on_reply=on_reply,
                send_optout_confirmation=send_optout_confirmation)
        if handled.outbox_ids and wake is not None:
            wake()
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
