"""Reading the kiosk aloud with a local speech engine (Debian's espeak-ng): no network.

`Speaker.say()` returns at once: espeak-ng runs as a subprocess on the event loop's own
child watcher, so the screen never waits for speech. A new utterance stops the one still
playing (a client who taps on does not hear the old screen to its end). With `wav_dir` set,
each utterance is written to a numbered WAV file instead of the sound card: that is how the
tests hear it, and how a clinic can check the voice without speakers.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("waitroom.kiosk.speech")

# espeak-ng voices per kiosk language: US English and Latin American Spanish.
VOICES = {"en": "en-us", "es": "es-419"}
RATE = 150  # words per minute: espeak-ng's default is 175, a little quick for a first hearing


@dataclass(frozen=True, slots=True)
class Utterance:
    lang: str
    voice: str
    text: str
    wav: Path | None


def voice_for(lang: str) -> str:
    return VOICES.get(lang, VOICES["en"])


_RANGE = re.compile(r"(\d+)\s*[–-]\s*(\d+)")
_HOURS = re.compile(r"\b(\d+) h\b")
_MIN = re.compile(r"\bmin\b")
_SYMBOLS = re.compile(r"[☑☐✓⌫●○◆•·…)]")


def for_speech(lang: str, text: str) -> str:
    """What the screen says, as a voice should say it: "10–25 min" is "10 to 25 minutes",
    check-box marks and separators are dropped (the caller says "selected" in words)."""
    es = lang == "es"
    text = _RANGE.sub(lambda m: f"{m[1]} {'a' if es else 'to'} {m[2]}", text)
    text = _HOURS.sub(lambda m: f"{m[1]} {'horas' if es else 'hours'}", text)
    text = _MIN.sub("minutos" if es else "minutes", text)
    text = _SYMBOLS.sub(" ", text.replace("(", ", "))
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return re.sub(r"([.,;:!?]),", r"\1", text)


class Speaker:
    """One voice for the kiosk: says one thing at a time, the newest wins."""

    def __init__(self, command: str = "espeak-ng", *, wav_dir: Path | None = None, rate: int = RATE) -> None:
        self.command = command
        self.wav_dir = wav_dir
        self.rate = rate
        self.spoken: list[Utterance] = []  # everything asked for, in order (tests and the log read it)
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._generation = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._missing_logged = False

    @property
    def available(self) -> bool:
        return shutil.which(self.command) is not None

    def say(self, lang: str, text: str) -> Utterance | None:
        """Start saying `text` in `lang`, stopping whatever is being said. Returns at once."""
        text = for_speech(lang, text)
        if not text:
            return None
        wav = None
        if self.wav_dir is not None:
            wav = self.wav_dir / f"{len(self.spoken) + 1:04d}-{lang}.wav"
        utterance = Utterance(lang, voice_for(lang), text, wav)
        self.spoken.append(utterance)
        self._generation += 1
        task = asyncio.get_running_loop().create_task(self._run(utterance, self._generation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return utterance

    def stop(self) -> None:
        """Silence, now (the kiosk went back to its welcome screen)."""
        self._generation += 1
        self._kill()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            try:
                self._proc.kill()
            except ProcessLookupError:
                pass

    def argv(self, utterance: Utterance) -> list[str]:
        out = [self.command, "-v", utterance.voice, "-s", str(self.rate)]
        if utterance.wav is not None:
            out += ["-w", str(utterance.wav)]
        return out  # the text goes on stdin: a text starting with "-" is never read as an option

    async def _run(self, utterance: Utterance, generation: int) -> None:
        async with self._lock:
            if generation != self._generation:
                return  # a newer utterance came before this one could start
            self._kill()
            if self._proc is not None:
                await self._proc.wait()
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *self.argv(utterance), stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            except OSError as e:
                if not self._missing_logged:
                    log.warning("cannot read aloud: %s (install espeak-ng)", e)
                    self._missing_logged = True
                self._proc = None
                return
            proc = self._proc
            assert proc.stdin is not None
            try:
                proc.stdin.write(utterance.text.encode() + b"\n")
                await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass  # killed by a newer utterance before it had read its text
        await proc.wait()

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Until everything asked for has been said or stopped (tests, and a clean exit)."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        self.stop()
        try:
            await self.wait_idle(5.0)
        except TimeoutError:
            log.warning("espeak-ng did not stop within 5 s")
