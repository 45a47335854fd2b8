"""Lobby display, client status page, live streams and `waitroom user add`."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from server.links import status_token
from server.store import Store, fetch
from tests.conftest import Api

A_0800 = "2026-03-02-v1-0800"  # Luna, Maria Lopez (+1 312 555 0101)


async def test_display_needs_a_display_token(api: Api) -> None:
    assert (await api.client.get("/display")).status == 401
    assert (await api.client.get("/display?token=nope")).status == 401
    assert (await api.client.get(f"/display?token={api.tokens['kiosk']}")).status == 401
    assert (await api.client.get("/display/live?token=nope")).status == 401


async def test_display_shows_pet_and_initial_only_and_delay_per_vet(api: Api) -> None:
    await api.event({"type": "checkin", "appointment": A_0800})
    await api.event({"type": "emergency", "id": "e1", "vet": "v1", "expected_min": 50})
    await api.event({"type": "emergency_start", "id": "e1"})
    resp = await api.client.get(f"/display?token={api.tokens['display']}")
    assert resp.status == 200
    html = await resp.text()
    assert "Luna L." in html and "Lopez" not in html and "Maria" not in html
    assert not re.search(r"555|\+1312", html)  # no phone numbers anywhere
    assert re.search(r"Dr\. Ruiz <span class=\"sep\">—</span> <span class=\"status is-behind\">about \d+ min behind "
                     r"\(emergency\)", html), html
    assert "Dr. Okafor" in html and "on time" in html
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


async def test_status_page_shows_pet_vet_place_and_range(api: Api) -> None:
    await api.event({"type": "checkin", "appointment": A_0800})
    token = status_token("test-secret", A_0800)
    resp = await api.client.get(f"/s/{token}")
    assert resp.status == 200
    html = await resp.text()
    assert "<h1>Luna</h1>" in html and "Dr. Ana Ruiz" in html and "<strong>next</strong> in line" in html
    assert re.search(r'id="range">(around \d+:\d\d[ap]m|\d+:\d\d[ap]m – \d+:\d\d[ap]m)</p>', html), html
    assert "I'm waiting in my car" in html
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
    # The reschedule page (/r/{token}, server/web/reschedule.py) is offered from the status page.
    assert 'href="/r/' in html


async def test_status_page_refuses_forged_links(api: Api) -> None:
    good = status_token("test-secret", A_0800)
    forged = status_token("another-secret", A_0800)
    assert (await api.client.get(f"/s/{forged}")).status == 404
    assert (await api.client.get(f"/s/{good[:-2]}xx")).status == 404
    assert (await api.client.get(f"/s/{forged}/live")).status == 404


async def test_waiting_in_the_car_is_recorded_as_an_event(api: Api) -> None:
    await api.event({"type": "checkin", "appointment": A_0800})
    token = status_token("test-secret", A_0800)
    html = await (await api.client.get(f"/s/{token}")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', html)
    assert csrf
    refused = await api.client.post(f"/s/{token}/car", data={}, allow_redirects=False)
    assert refused.status == 403
    ok = await api.client.post(f"/s/{token}/car", data={"csrf": csrf.group(1)}, allow_redirects=False)
    assert ok.status == 303
    html = await (await api.client.get(f"/s/{token}")).text()
    assert "we'll text you when it's your turn" in html
    store = await Store.open(str(api.db))
    try:
        rows = await fetch(store.conn, "SELECT type, appointment_id, actor FROM events WHERE type = 'in_car'")
        assert [tuple(r) for r in rows] == [("in_car", A_0800, "client")]
        assert len(await fetch(store.conn, "SELECT 1 FROM waiting_in_car")) == 1
    finally:
        await store.close()


async def read_sse(resp: Any, timeout: float) -> dict[str, str]:
    """The next `data:` message of an event stream."""
    async def one() -> dict[str, str]:
        while True:
            line = (await resp.content.readline()).decode()
            if line.startswith("data: "):
                return dict(json.loads(line[6:]))

    return await asyncio.wait_for(one(), timeout)


async def test_status_stream_pushes_a_change_within_a_second(api: Api) -> None:
    token = status_token("test-secret", A_0800)
    resp = await api.client.get(f"/s/{token}/live")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    first = await read_sse(resp, 2)
    assert "Booked for 8:00am" in first["status"]
    await api.event({"type": "checkin", "appointment": A_0800})
    await api.event({"type": "start", "appointment": A_0800})
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while True:
        msg = await read_sse(resp, 1.5)
        if "It's your turn" in msg["status"]:
            break
    assert loop.time() - t0 < 1.0
    resp.close()


async def test_display_stream_moves_when_an_emergency_is_declared(api: Api) -> None:
    resp = await api.client.get(f"/display/live?token={api.tokens['display']}")
    first = await read_sse(resp, 2)
    assert "(emergency)" not in first["display"]
    await api.event({"type": "checkin", "appointment": A_0800})
    await api.event({"type": "emergency", "id": "e9", "vet": "v1", "expected_min": 60})
    msg = await read_sse(resp, 1.5)
    while "(emergency)" not in msg["display"]:
        msg = await read_sse(resp, 1.5)
    assert "Emergency" in msg["display"]
    resp.close()


def test_cli_user_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    cmd = [sys.executable, "-m", "server.cli", "user", "add", "ana", "--password-stdin", "--db", str(db)]
    ok = subprocess.run(cmd, input="long enough pw\n", capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    again = subprocess.run(cmd, input="long enough pw\n", capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "exists already" in again.stderr
    short = subprocess.run([*cmd[:5], "bob", *cmd[6:]], input="short\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "at least 8" in short.stderr
