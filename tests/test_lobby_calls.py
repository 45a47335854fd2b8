"""Names called in the lobby (issue 20), at the server: the words (pet and surname initial,
the room or the vet, the client's language), the clinic's setting, and the sound - a chime
and espeak-ng's words as one WAV, for a display token only. The browser's side (the queue,
one call at a time) is tested in tests/test_browser_calls.py."""

from __future__ import annotations

import html
import io
import re
import subprocess
import wave
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server import speech
from server.app import create_app
from server.config import Config, ManualClock
from tests import dbq
from tests.conftest import Api, NewDb, seed_clinic

LUNA = "2026-03-02-v1-0800"  # Luna, Maria Lopez (Spanish), Dr. Ana Ruiz (v1)
BELLA = "2026-03-02-v3-0800"  # Bella, James Carter (English), Dr. Chloe Martin (v3)


set_settings = dbq.set_settings_now  # (db, **settings): merged into the clinic's settings


Lobby = Callable[..., Any]


@pytest.fixture
async def lobby(new_db: NewDb, clock: ManualClock) -> AsyncIterator[Lobby]:
    """An app on a seeded clinic with the given clinic settings (they are read at start-up)."""
    clients: list[TestClient[Any, Any]] = []

    async def make(**settings: Any) -> Api:
        db = new_db(f"clinic{len(clients)}")
        tokens = await seed_clinic(db, history_days=2)
        await dbq.set_settings(db, **settings)
        config = Config(db_path=db, clock=clock, secret="test-secret", public_url="http://clinic.test")
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(config)))
        await client.start_server()
        clients.append(client)
        return Api(client, tokens, clock, db)

    yield make
    for c in clients:
        await c.close()


async def display(api: Api) -> str:
    resp = await api.client.get(f"/display?token={api.tokens['display']}")
    assert resp.status == 200
    return await resp.text()


def called(page: str) -> list[tuple[str, str | None, str]]:
    """(text, audio URL, lang) of each call item on the display page."""
    out = []
    for m in re.finditer(r'<li class="call" data-call="[0-9a-f]+" data-at="[^"]+"(?: data-audio="([^"]+)")? '
                         r'lang="(\w+)">([^<]+)</li>', page):
        out.append((html.unescape(m[3]), html.unescape(m[1]) if m[1] else None, m[2]))
    return out


async def start(api: Api, *ids: str) -> None:
    for i in ids:
        await api.event({"type": "checkin", "appointment": i})
    for i in ids:
        await api.event({"type": "start", "appointment": i})


async def test_a_started_consult_is_called_by_pet_and_initial_with_room_or_vet(lobby: Lobby) -> None:
    api = await lobby(vet_rooms={"v1": "2"})
    assert called(await display(api)) == []
    await start(api, LUNA, BELLA)
    page = await display(api)
    texts = [(t, lang) for t, _, lang in called(page)]
    # Newest first on the screen; each in its client's language; a vet without a room is named.
    assert ("Luna L., pase a la sala 2, por favor.", "es") in texts
    assert ("Bella C., please come to Dr. Martin's room.", "en") in texts
    assert "Lopez" not in page and "Carter" not in page and "555" not in page
    # Three minutes later the call is over: off the screen, and its sound is gone too.
    url = called(page)[0][1]
    assert url is not None
    api.clock.advance(minutes=4)
    assert called(await display(api)) == []
    assert (await api.client.get(url)).status == 404


async def test_only_a_consult_still_under_way_is_called(lobby: Lobby) -> None:
    # Calls are read from the visits' state (an undone start puts the visit back to waiting):
    # a consult already over is not announced, however recent its start.
    api = await lobby()
    await start(api, BELLA)
    assert len(called(await display(api))) == 1
    await api.event({"type": "end", "appointment": BELLA})
    assert called(await display(api)) == []


def pcm(data: bytes) -> tuple[int, bytes]:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), w.readframes(w.getnframes())


def espeak(voice: str, text: str) -> bytes:
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout"], input=text.encode() + b"\n",
                         capture_output=True, check=True).stdout
    return out[out.find(b"data") + 8:]


async def test_the_call_sounds_a_chime_then_the_words_in_the_clients_voice(lobby: Lobby) -> None:
    api = await lobby(vet_rooms={"v1": "2"})
    await start(api, LUNA)
    [(text, url, lang)] = called(await display(api))
    assert url is not None and lang == "es"
    assert (await api.client.get(url.split("?")[0])).status == 401  # no token, no sound
    assert (await api.client.get(url.replace(api.tokens["display"], api.tokens["kiosk"]))).status == 401
    assert (await api.client.get(re.sub(r"/call/[0-9a-f]+", "/call/" + "0" * 20, url))).status == 404
    resp = await api.client.get(url)
    assert resp.status == 200 and resp.content_type == "audio/wav"
    rate, frames = pcm(await resp.read())
    assert rate == speech.RATE
    tone = speech.chime()
    assert frames.startswith(tone)
    words = frames[len(tone):]
    assert len(words) / 2 / rate > 1.5  # "Luna L., pase a la sala 2, por favor." takes a while to say
    assert words == espeak("es-419", text) != espeak("en-us", text)  # the Spanish voice said it
    again = await api.client.get(url)
    assert await again.read() == await resp.read()


@pytest.mark.parametrize("mode", ["show", "off"])
async def test_the_clinic_can_show_calls_without_sound_or_turn_them_off(lobby: Lobby, mode: str) -> None:
    api = await lobby(lobby_calls=mode)
    await start(api, BELLA)
    page = await display(api)
    if mode == "off":
        assert called(page) == [] and 'id="call-now"' not in page
    else:
        [(text, url, _)] = called(page)
        assert text == "Bella C., please come to Dr. Martin's room." and url is None
        assert 'id="call-now"' in page and 'id="sound-on"' not in page
        call_id = re.search(r'data-call="([0-9a-f]+)"', page)
        assert call_id is not None
        resp = await api.client.get(f"/display/call/{call_id[1]}.wav?token={api.tokens['display']}")
        assert resp.status == 404
