"""Odd input from anyone gets a 4xx with the usual error body, never a 500 with a traceback.

Issue 11 item 7: a form content type without a boundary (or otherwise unreadable) on every
route that reads a form, including the Twilio webhooks before their signature check; a JSON
body nested deeper than the parser can follow; a 405 without its `Allow` header.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from notifier.links import make_token, status_token
from server.app import create_app
from server.config import Config, ManualClock
from tests.conftest import START, link_secret, seed_clinic
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN

SECRET = "test-secret"
VISIT = "2026-03-02-v1-0800"


@dataclass
class Site:
    client: TestClient[Any, Any]
    tokens: dict[str, str]
    key: str  # what the app signs this clinic's links with

    def h(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
async def site(clinic_db: str) -> AsyncIterator[Site]:
    db = clinic_db
    tokens = await seed_clinic(db, history_days=1)
    config = Config(db_path=str(db), clock=ManualClock(START), secret=SECRET, public_url="http://clinic.test",
                    sms_provider="twilio", twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                    twilio_from="+13125550100", run_notifier=False)
    async with TestClient(TestServer(create_app(config))) as client:
        yield Site(client, tokens, link_secret(db, SECRET))


def _form_routes(key: str) -> list[str]:
    # Valid links (signed with the clinic's key), so each handler gets as far as reading its form.
    return ["/login", f"/r/{make_token(key.encode(), VISIT, START)}", f"/s/{status_token(key, VISIT)}/car",
            "/sms/inbound", "/sms/status?row=1"]


# Content types and bodies aiohttp's form reader cannot read (each raised something else).
ODD_FORMS = [
    ("multipart/form-data", b"x"),  # no boundary: ValueError
    ("multipart/form-data; boundary=abc", b"x"),  # no starting boundary: ValueError
    ("multipart/form-data; boundary=abc", b"--abc\r\nnonsense\r\n\r\nv\r\n--abc--\r\n"),  # InvalidHeader
    ("multipart/form-data; boundary=abc",
     b'--abc\r\nContent-Disposition: form-data; name="a"\r\nContent-Transfer-Encoding: odd\r\n\r\nv\r\n--abc--\r\n'),
    ("application/x-www-form-urlencoded; charset=nope", b"a=b"),  # LookupError
]


@pytest.mark.parametrize(("content_type", "body"), ODD_FORMS, ids=["no-boundary", "no-start", "bad-header",
                                                                  "bad-encoding", "bad-charset"])
async def test_unreadable_form_is_a_400_naming_the_body_on_every_form_route(
        site: Site, content_type: str, body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    for path in _form_routes(site.key):
        with caplog.at_level(logging.ERROR):
            resp = await site.client.post(path, data=body, headers={"Content-Type": content_type})
        assert resp.status == 400, (path, resp.status, await resp.text())
        assert (await resp.json())["field"] == "body", path
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_json_nested_beyond_the_parser_is_a_400_not_a_recursion_error(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    deep = b"[" * 200_000
    for path, role in [("/api/events", "reception"), ("/api/schedule", "pms"), ("/api/kiosk/lookup", "kiosk"),
                       ("/api/kiosk/checkin", "kiosk"), ("/api/kiosk/walkin", "kiosk"), ("/api/kiosk/urgent", "kiosk")]:
        with caplog.at_level(logging.ERROR):
            resp = await site.client.post(path, data=deep, headers={**site.h(role), "Content-Type": "application/json"})
        assert resp.status == 400, (path, await resp.text())
        assert await resp.json() == {"error": "body: nested too deeply", "field": "body"}
    # Closed deep nesting in a field the server ignores is no different.
    closed = b'{"type": "urgent", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    resp = await site.client.post("/api/events", data=closed, headers=site.h("reception"))
    assert resp.status == 400 and (await resp.json())["field"] == "body"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_text_no_database_can_keep_is_a_400_naming_its_field(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    # PostgreSQL refuses a NUL in text (a 500 from the driver, found by the fuzz run on it) and
    # neither backend can encode a lone surrogate, which JSON's escapes can spell.
    for raw, field in [(b'{"vets": [{"id": "v\\u00009", "name": "Dr. Nul"}]}', "vets[0].id"),
                       (b'{"vets": [{"id": "v9", "name": "Dr. \\udba4"}]}', "vets[0].name"),
                       (b'{"vets": [{"id": "v9", "name": "Dr. Nine", "\\u0000": 1}]}', "vets[0]")]:
        with caplog.at_level(logging.ERROR):
            resp = await site.client.post("/api/schedule", data=raw,
                                          headers={**site.h("pms"), "Content-Type": "application/json"})
        assert resp.status == 400, (raw, await resp.text())
        assert (await resp.json())["field"] == field
    resp = await site.client.post("/api/kiosk/lookup", json={"phone": "312\x00555"}, headers=site.h("kiosk"))
    assert resp.status == 400 and (await resp.json())["field"] == "phone"
    resp = await site.client.post("/login", data={"name": "ana\x00", "password": "x"}, allow_redirects=False)
    assert resp.status == 400 and (await resp.json())["field"] == "name"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    resp = await site.client.get("/api/estimates", headers=site.h("pms"))
    assert "v9" not in await resp.text()  # nothing of the refused pushes was kept


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("DELETE", "/api/events", {"POST"}), ("GET", "/api/events", {"POST"}), ("PUT", "/api/schedule", {"POST"}),
    ("POST", "/api/health", {"GET", "HEAD"}), ("PUT", "/login", {"GET", "HEAD", "POST"}),
    ("DELETE", "/console", {"GET", "HEAD"}), ("GET", "/sms/inbound", {"POST"}),
])
async def test_405_names_the_allowed_methods(site: Site, method: str, path: str, allowed: set[str]) -> None:
    resp = await site.client.request(method, path, headers=site.h("reception"))
    assert resp.status == 405
    assert set(resp.headers.get("Allow", "").split(",")) == allowed
    if path.startswith("/api/"):
        assert (await resp.json())["error"] == "Method Not Allowed"
