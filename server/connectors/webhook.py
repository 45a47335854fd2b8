"""The receiver for Provet Cloud's webhooks, run by `waitroom sync --pms provet --listen`.

Provet POSTs a form naming what changed (`appointment_id=123`, `consultation_id=...`) and
retries until it gets a 200. The URL carries a secret of ours (`/pms/provet/webhook/<secret>`,
compared in constant time): Provet signs nothing, so a stranger who guesses the path could at
most make us re-read an appointment from Provet, never change one. A named appointment is
fetched in the next round (within seconds); anything else only wakes the loop.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from server.connectors.loop import SyncLoop
from server.connectors.provet import appointment_id_from_webhook

log = logging.getLogger("waitroom.connectors")


def webhook_app(loop: SyncLoop, secret: str) -> web.Application:
    """An app answering POST /pms/<pms>/webhook/<secret>."""
    if len(secret) < 16:
        raise ValueError("the webhook secret must be at least 16 characters")
    app = web.Application(client_max_size=64 * 1024)

    async def receive(request: web.Request) -> web.Response:
        given = request.match_info["secret"]
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return web.Response(status=404)
        form = await request.post()
        fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        pms_id = appointment_id_from_webhook(fields)
        loop.nudge(pms_id)
        log.info("%s webhook: %s", loop.connector.name, f"appointment {pms_id}" if pms_id else
                 ", ".join(sorted(fields))[:80] or "no fields")
        return web.Response(text="ok")

    app.router.add_post(f"/pms/{loop.connector.name}/webhook/{{secret}}", receive)
    return app
