"""Replies on the console provider (issue 15 item 5): `waitroom sms receive` brings a client's
text in as Twilio's webhook would, through the webhook's own code, to a real server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests import dbq
from tests.conftest import LiveServer, eventually

EXE = str(Path(sys.executable).parent / "waitroom")
HOUSEHOLD = "312-555-0102"  # Max and Bella, booked today


async def receive(server: LiveServer, *args: str, token: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        EXE, "sms", "receive", "--server", server.base_url, "--token", token or server.tokens["reception"], *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def rows(server: LiveServer, sql: str) -> list[tuple[object, ...]]:
    return dbq.rows_now(server.db, sql)


async def test_a_reply_by_hand_keeps_the_place_as_a_texted_reply_would(live_server: LiveServer) -> None:
    code, out, err = await receive(live_server, "--from", HOUSEHOLD, "--body", "1")
    assert code == 0, err
    assert "keeps their place" in out and "+13125550102" in out
    # The reply is in reception's record of texts, and the visit has its "keep" event.
    assert rows(live_server, "SELECT from_number, body, kind FROM inbound_messages") == [("+13125550102", "1", "keep")]
    assert rows(live_server, "SELECT type FROM events WHERE type = 'reply'") == [("reply",)]


async def test_asking_to_reschedule_by_hand_texts_back_the_link(live_server: LiveServer) -> None:
    code, out, err = await receive(live_server, "--from", "(312) 555-0102", "--body", "2")
    assert code == 0, err
    assert "reschedule" in out and "1 answer(s) queued" in out

    def link_queued() -> bool:
        return any("/r/" in str(body) for (body,) in rows(live_server, "SELECT body FROM outbox"))

    await eventually(link_queued, "the reschedule link queued as an answer to +13125550102")


async def test_bad_input_and_no_token_say_what_is_wrong(live_server: LiveServer) -> None:
    code, _, err = await receive(live_server, "--from", "not a number", "--body", "1")
    assert code == 1 and "HTTP 400" in err and "from" in err
    code, _, err = await receive(live_server, "--from", HOUSEHOLD, "--body", "1", token="wr_reception_stolen")
    assert code == 1 and "HTTP 401" in err
    code, _, err = await receive(live_server, "--from", HOUSEHOLD, "--body", "1", token=live_server.tokens["kiosk"])
    assert code == 1 and "HTTP 403" in err
    assert rows(live_server, "SELECT count(*) FROM inbound_messages") == [(0,)]


async def test_with_twilio_replies_come_only_through_twilios_signed_webhook(live_server: LiveServer) -> None:
    await live_server.stop()
    live_server.settings = {"sms_provider": "twilio", "twilio_account_sid": "AC" + "0" * 32,
                            "twilio_auth_token": "secret-token", "twilio_from": "+13125550100",
                            "run_notifier": False}
    await live_server.start()
    code, _, err = await receive(live_server, "--from", HOUSEHOLD, "--body", "1")
    assert code == 1 and "HTTP 409" in err and "Twilio" in err
