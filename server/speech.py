"""Words made sound on the server, by Debian's espeak-ng (a local engine, no network): the
lobby display's name calls (server/web/calls.py), a chime then the words, as one WAV file."""

from __future__ import annotations

import asyncio
import io
import math
import struct
import wave
from collections import OrderedDict
from functools import lru_cache
from typing import Protocol

VOICES = {"en": "en-us", "es": "es-419"}
RATE = 22050  # espeak-ng's own sample rate: the chime is made at the same rate, to join them
ESPEAK = "espeak-ng"
RENDER_TIMEOUT_S = 10.0
_CACHE_SIZE = 32


class Spoken(Protocol):
    """What can be said: an id to keep its sound by, the words and their language."""

    @property
    def id(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def lang(self) -> str: ...


@lru_cache(maxsize=2)
def chime(rate: int = RATE) -> bytes:
    """Two soft notes, high then higher (E5, A5), 16-bit mono PCM: "a name is coming"."""
    frames = bytearray()
    for freq, secs in ((659.25, 0.28), (880.0, 0.45)):
        n = int(rate * secs)
        for i in range(n):
            envelope = min(1.0, i / (0.01 * rate)) * math.exp(-3.0 * i / n)
            sample = 0.35 * envelope * (math.sin(2 * math.pi * freq * i / rate)
                                        + 0.3 * math.sin(4 * math.pi * freq * i / rate))
            frames += struct.pack("<h", int(max(-1.0, min(1.0, sample)) * 32767))
    frames += b"\0\0" * int(rate * 0.3)  # a breath before the words
    return bytes(frames)


def _pcm_of(wav_bytes: bytes) -> bytes:
    """The samples of espeak-ng's --stdout WAV (its header's sizes are left unset: it streams)."""
    at = wav_bytes.find(b"data")
    if not wav_bytes.startswith(b"RIFF") or at < 0:
        raise CallAudioError("espeak-ng did not write a WAV")
    return wav_bytes[at + 8:]


class CallAudioError(Exception):
    """The words could not be turned into sound (espeak-ng missing, failed or too slow)."""


async def speak(text: str, lang: str) -> bytes:
    """`text` said by espeak-ng in `lang`'s voice after the chime: one complete WAV file."""
    try:
        proc = await asyncio.create_subprocess_exec(
            ESPEAK, "-v", VOICES.get(lang, "en-us"), "-s", "150", "--stdout",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    except OSError as e:
        raise CallAudioError(f"cannot run {ESPEAK}: {e}") from e
    try:
        out, _ = await asyncio.wait_for(proc.communicate(text.encode() + b"\n"), RENDER_TIMEOUT_S)
    except TimeoutError as e:
        proc.kill()
        await proc.wait()
        raise CallAudioError("espeak-ng took too long") from e
    if proc.returncode != 0:
        raise CallAudioError(f"espeak-ng exited with {proc.returncode}")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(chime() + _pcm_of(out))
    return buf.getvalue()


class CallAudio:
    """Each current call's WAV, made once (two at a time at most) and kept for a while."""

    def __init__(self) -> None:
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._making: dict[str, asyncio.Task[bytes]] = {}
        self._slots = asyncio.Semaphore(2)

    async def get(self, call: Spoken) -> bytes:
        if call.id in self._cache:
            self._cache.move_to_end(call.id)
            return self._cache[call.id]
        task = self._making.get(call.id)
        if task is None:
            task = asyncio.ensure_future(self._make(call))
            self._making[call.id] = task
            task.add_done_callback(lambda _: self._making.pop(call.id, None))
        return await asyncio.shield(task)

    async def _make(self, call: Spoken) -> bytes:
        async with self._slots:
            audio = await speak(call.text, call.lang)
        self._cache[call.id] = audio
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return audio
