"""Logs keep no live secret (issue 11 item 6): the access log of `waitroom serve` and the
console SMS provider show `/r/<redacted>`, `/s/<redacted>/live` and `?token=<redacted>`.

A reschedule link can cancel a visit, a status link shows it, a display token shows the
lobby's queue: a log is read by more people (and kept longer) than should hold any of them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from notifier.links import make_token, redact, status_token
from notifier.providers import ConsoleProvider, make_provider
from server.app import ACCESS_LOG_FORMAT, ClinicAccessLogger, create_app
from server.cli import _config
from server.config import Config, ManualClock
from server.web.live import CLOSING
from tests.conftest import START, link_secret, seed_clinic

SECRET = "test-secret"
VISIT = "2026-03-02-v1-0800"


async def test_access_log_keeps_routes_but_no_link_or_display_token(clinic_db: str,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every request logged, as a live stream always is (it outlasts the slow-request threshold).
    monkeypatch.setattr(ClinicAccessLogger, "SLOW_S", 0.0)
    db = clinic_db
    tokens = await seed_clinic(db, history_days=1)
    config = Config(db_path=str(db), clock=ManualClock(START), secret=SECRET, public_url="http://clinic.test",
                    run_notifier=False)
    key = link_secret(db, SECRET)
    status, link, display = status_token(key, VISIT), make_token(key.encode(), VISIT, START), tokens["display"]
    server = TestServer(create_app(config))
    with caplog.at_level(logging.INFO, logger="waitroom.access"):
        # The access log exactly as `waitroom serve` sets it up.
        await server.start_server(access_log=logging.getLogger("waitroom.access"),
                                  access_log_class=ClinicAccessLogger, access_log_format=ACCESS_LOG_FORMAT)
        async with TestClient(server) as c:
            for path in (f"/display?token={display}", f"/s/{status}", f"/r/{link}", f"/r/{link}?cancel=1",
                         f"/display?lang=es&token={display}"):
                assert (await c.get(path)).status == 200, path
            assert (await c.post(f"/s/{status}/car", data={"csrf": "stale"})).status == 403
            assert (await c.post(f"/r/{link}", data={"csrf": "stale", "action": "cancel"})).status == 403
            # Live streams are logged when they end: here, as at shutdown, when the server closes them.
            streams = [await c.get(path) for path in (f"/display/live?token={display}", f"/s/{status}/live")]
            for stream in streams:
                assert stream.status == 200
                await stream.content.readuntil(b"data: ")  # the first render: the stream is live
            assert c.app is not None
            c.app[CLOSING].set()
            for stream in streams:
                await asyncio.wait_for(stream.read(), 10)
                stream.release()
        lines = [r.getMessage() for r in caplog.records if r.name == "waitroom.access"]
    text = "\n".join(lines)
    assert len(lines) == 9, text
    for secret in (status, status.split(".")[1], link, link.split(".")[1], display):
        assert secret not in text
    for shown in ("GET /display?token=<redacted> ", "GET /display?lang=es&token=<redacted> ",
                  "GET /s/<redacted> ", "GET /r/<redacted>?cancel=1 ", "POST /s/<redacted>/car ",
                  "POST /r/<redacted> ", "GET /display/live?token=<redacted> ", "GET /s/<redacted>/live "):
        assert shown in text, shown


def test_redact_keeps_the_shape_of_urls_and_leaves_other_text_alone() -> None:
    body = ("Luna: Dr. Ruiz is with an emergency. Reply 1 to keep your place, 2 to reschedule, or tap "
            "https://clinic.example/r/eyJ2IjoiYSJ9.c2lnbmF0dXJl Status: https://clinic.example/s/YTE.sig/live")
    assert redact(body) == ("Luna: Dr. Ruiz is with an emergency. Reply 1 to keep your place, 2 to reschedule, "
                            "or tap https://clinic.example/r/<redacted> Status: https://clinic.example/s/<redacted>/live")
    for plain in ("/api/kiosk/visits/a1", "/console/visits/a1/checkin", "/static/waitroom.css", "/sms/status?row=3",
                  "/login?next=/console"):
        assert redact(plain) == plain


async def test_console_provider_shows_texts_with_links_redacted_unless_the_demo_asks(
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    body = "Tap https://clinic.example/r/eyJ2IjoiYSJ9.c2lnbmF0dXJl to reschedule."
    with caplog.at_level(logging.INFO, logger="waitroom.notifier"):
        await ConsoleProvider().send("+13125550102", body, 1)
    out = capsys.readouterr().out + caplog.text
    assert "c2lnbmF0dXJl" not in out
    assert "[sms to +13125550102] Tap https://clinic.example/r/<redacted> to reschedule." in out
    # The demo (WAITROOM_CONSOLE_SMS_LINKS=1): the link is there to be followed.
    demo = make_provider("console", console_links=True)
    await demo.send("+13125550102", body, 2)
    assert f"[sms to +13125550102] {body}" in capsys.readouterr().out
    assert make_provider("console").show_links is False  # type: ignore[attr-defined]


def test_serve_reads_the_console_links_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    args = argparse.Namespace(db="x.db")
    assert _config(args).console_sms_links is False
    monkeypatch.setenv("WAITROOM_CONSOLE_SMS_LINKS", "1")
    assert _config(args).console_sms_links is True

