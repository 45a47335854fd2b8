"""Lobby display, client status page (in the client's language), live streams and `waitroom user add`.

Luna's owner reads Spanish in the seed; tests about what the status page shows make her an
English speaker first (`set_language`), the Spanish ones leave her as she is."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from html import unescape
from typing import Any

from notifier.links import status_token
from tests import dbq
from tests.conftest import Api, NewDb

A_0800 = "2026-03-02-v1-0800"  # Luna, Maria Lopez (+1 312 555 0101)


async def set_language(api: Api, language: str, client: str = "c1") -> None:
    """The client's stored language (c1: Maria Lopez, Luna's owner, "es" in the seed)."""
    await dbq.rows(api.db, "UPDATE clients SET language = ? WHERE id = ?", language, client)


def lang_attr(html: str) -> str:
    m = re.search(r'<html lang="([a-z]+)">', html)
    assert m, html[:300]
    return m.group(1)


def switch_link(html: str) -> tuple[str, str]:
    """(href, text) of the page's link to the other language."""
    m = re.search(r'<p class="lang-switch[^"]*"><a href="([^"]+)" hreflang="([a-z]+)" lang="\2">([^<]+)</a></p>', html)
    assert m, html[:1500]
    return unescape(m.group(1)), m.group(3)


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
    await set_language(api, "en")
    await api.event({"type": "checkin", "appointment": A_0800})
    token = status_token(api.secret, A_0800)
    resp = await api.client.get(f"/s/{token}")
    assert resp.status == 200
    html = await resp.text()
    assert "<h1>Luna</h1>" in html and "Dr. Ana Ruiz" in html and "<strong>next</strong> in line" in html
    assert re.search(r'id="range">(around \d+:\d\d [AP]M|\d+:\d\d( [AP]M)? – \d+:\d\d [AP]M)</p>', html), html
    assert "I'm waiting in my car" in html
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
    # No reschedule (or cancel) link: the page opens from the kiosk's QR code, which anyone who
    # typed the number can scan. The way to change the visit goes through the client's phone.
    assert "/r/" not in html and "Reply 2 to one of our texts" in html


async def test_status_page_refuses_forged_links(api: Api) -> None:
    good = status_token(api.secret, A_0800)
    forged = status_token("another-secret", A_0800)
    assert (await api.client.get(f"/s/{forged}")).status == 404
    assert (await api.client.get(f"/s/{good[:-2]}xx")).status == 404
    assert (await api.client.get(f"/s/{forged}/live")).status == 404


async def test_waiting_in_the_car_is_recorded_as_an_event(api: Api) -> None:
    await set_language(api, "en")
    await api.event({"type": "checkin", "appointment": A_0800})
    token = status_token(api.secret, A_0800)
    html = await (await api.client.get(f"/s/{token}")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', html)
    assert csrf
    refused = await api.client.post(f"/s/{token}/car", data={}, allow_redirects=False)
    assert refused.status == 403
    ok = await api.client.post(f"/s/{token}/car", data={"csrf": csrf.group(1)}, allow_redirects=False)
    assert ok.status == 303
    html = await (await api.client.get(f"/s/{token}")).text()
    assert "we'll text you when it's your turn" in html
    rows = await dbq.rows(api.db, "SELECT type, appointment_id, actor FROM events WHERE type = 'in_car'")
    assert rows == [("in_car", A_0800, "client")]
    assert len(await dbq.rows(api.db, "SELECT 1 FROM waiting_in_car")) == 1


async def read_sse(resp: Any, timeout: float) -> dict[str, str]:
    """The next `data:` message of an event stream."""
    async def one() -> dict[str, str]:
        while True:
            line = (await resp.content.readline()).decode()
            if line.startswith("data: "):
                return dict(json.loads(line[6:]))

    return await asyncio.wait_for(one(), timeout)


async def test_status_stream_pushes_a_change_within_a_second(api: Api) -> None:
    await set_language(api, "en")
    token = status_token(api.secret, A_0800)
    resp = await api.client.get(f"/s/{token}/live")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    first = await read_sse(resp, 2)
    assert "Booked for 8:00 AM" in first["status"]
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


async def test_status_page_speaks_the_clients_spanish_live_region_too(api: Api) -> None:
    await api.event({"type": "checkin", "appointment": A_0800})
    token = status_token(api.secret, A_0800)
    resp = await api.client.get(f"/s/{token}")
    html = unescape(await resp.text())
    assert resp.status == 200 and lang_attr(html) == "es"
    assert "<h1>Luna</h1>" in html and "con la Dra. Ana Ruiz" in html
    assert "Su turno es el <strong>próximo</strong>" in html
    assert re.search(r'id="range">(hacia las \d\d:\d\d|\d\d:\d\d – \d\d:\d\d)</p>', html), html
    assert "Estoy esperando en mi auto" in html and "Conectando…" in html and "Saltar al contenido" in html
    assert re.search(r"Actualizado: \d\d:\d\d · esta página se actualiza sola", html)
    assert "Responda 2 a uno de nuestros mensajes" in html and "/r/" not in html
    assert not re.search(r"\d[ap]m\b|next|in line|Booked|Updated", html)
    assert switch_link(html) == (f"/s/{token}?lang=en", "English")
    # Still no inline script under the same CSP.
    assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) and not re.search(r"\son[a-z]+\s*=", html)
    # The live region's updates are in Spanish too.
    live = await api.client.get(f"/s/{token}/live")
    first = await read_sse(live, 2)
    assert "Su turno es el <strong>próximo</strong>" in unescape(first["status"])
    live.close()
    csrf = re.search(r'name="csrf" value="([^"]+)"', html)
    assert csrf
    ok = await api.client.post(f"/s/{token}/car", data={"csrf": csrf.group(1)}, headers={"X-Requested-With": "fetch"})
    assert (await ok.json())["message"] == "Gracias: le avisaremos cuando sea su turno."
    after = unescape(await (await api.client.get(f"/s/{token}")).text())
    assert "Gracias: le enviaremos un mensaje cuando sea su turno." in after
    await api.event({"type": "start", "appointment": A_0800})
    assert "Es su turno: pase, por favor." in unescape(await (await api.client.get(f"/s/{token}")).text())


async def test_status_switch_link_flips_the_language_and_keeps_it(api: Api) -> None:
    await api.event({"type": "checkin", "appointment": A_0800})
    token = status_token(api.secret, A_0800)
    href, _ = switch_link(await (await api.client.get(f"/s/{token}")).text())
    html = unescape(await (await api.client.get(href)).text())
    assert lang_attr(html) == "en" and "<strong>next</strong> in line" in html and "I'm waiting in my car" in html
    # The live stream and the car form keep English.
    assert f'data-live="/s/{token}/live?lang=en"' in html and f'action="/s/{token}/car?lang=en"' in html
    live = await api.client.get(f"/s/{token}/live?lang=en")
    assert "<strong>next</strong> in line" in (await read_sse(live, 2))["status"]
    live.close()
    csrf = re.search(r'name="csrf" value="([^"]+)"', html)
    assert csrf
    # Without JavaScript the form posts and comes back to the English page.
    posted = await api.client.post(f"/s/{token}/car?lang=en", data={"csrf": csrf.group(1)}, allow_redirects=False)
    assert posted.status == 303 and posted.headers["Location"] == f"/s/{token}?lang=en"
    back, name = switch_link(html)
    assert (back, name) == (f"/s/{token}?lang=es", "Español")
    assert lang_attr(await (await api.client.get(back)).text()) == "es"


async def test_status_page_for_english_clients_and_forged_links(api: Api) -> None:
    milo = status_token(api.secret, "2026-03-02-v2-0800")  # Milo, Emma Rossi: English
    rows = await dbq.rows(api.db, "SELECT c.language FROM appointments a JOIN pets p ON p.id = a.pet_id "
                                  "JOIN clients c ON c.id = p.client_id WHERE a.id = '2026-03-02-v2-0800'")
    assert rows[0][0] == "en"
    # A stored choice beats the browser's.
    html = await (await api.client.get(f"/s/{milo}", headers={"Accept-Language": "es"})).text()
    assert lang_attr(html) == "en" and "Booked for 8:00 AM" in html and "Español" in html
    for header, lang, words in (("es-ES,es;q=0.9", "es", "no es válido"), ("en-GB", "en", "not valid"),
                                ("", "en", "not valid")):
        resp = await api.client.get("/s/forged.link", headers={"Accept-Language": header} if header else {})
        text = await resp.text()
        assert resp.status == 404 and f"<html lang='{lang}'>" in text and words in text


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


def test_cli_user_add_reads_the_password_from_stdin(new_db: NewDb) -> None:
    db = new_db("c")
    cmd = [sys.executable, "-m", "server.cli", "user", "add", "ana", "--password-stdin", "--db", str(db)]
    ok = subprocess.run(cmd, input="long enough pw\n", capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    again = subprocess.run(cmd, input="long enough pw\n", capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "exists already" in again.stderr
    short = subprocess.run([*cmd[:5], "bob", *cmd[6:]], input="short\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "at least 8" in short.stderr
