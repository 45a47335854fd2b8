"""The lobby kiosk: a Textual app that only talks to the clinic server over HTTP.

The screens (kiosk/screens/) ask for what they need with messages (kiosk/messages.py): the app
navigates, speaks, keeps the idle time-out and does the network work, and answers each
request by a message back to the screen that asked.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from textual.app import App
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from kiosk import messages as m
from kiosk.api import JSON, ApiError, ClinicClient, HttpClinicClient, Kind, KioskError, ServerUnreachable
from kiosk.demo import DemoNote
from kiosk.offline import OfflineQueue, Submitted
from kiosk.screens.done import DoneScreen
from kiosk.screens.error import ErrorScreen
from kiosk.screens.timeout import MoreTime
from kiosk.screens.welcome import WelcomeScreen
from kiosk.session import Session
from kiosk.speech import Speaker

log = logging.getLogger("waitroom.kiosk")

SIZE = (160, 50)  # a 1280x800 touchscreen in 8x16 cells: tests and snapshots use this
REQUESTS = "requests"  # the worker group of the screens' requests (kiosk/messages.py)


class KioskApp(App[None]):
    CSS_PATH = "kiosk.tcss"
    TITLE = "waitroom kiosk"
    ENABLE_COMMAND_PALETTE = False
    # A terminal smaller than the touchscreen (80x24 in a plain terminal, or piped through
    # tee) gets a compact layout: classes on each screen, styled in kiosk.tcss.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]

    online: reactive[bool] = reactive(True)
    queued: reactive[int] = reactive(0)
    clinic_name: reactive[str] = reactive("")  # from the server; "" until it has answered

    def __init__(self, api: ClinicClient, queue: OfflineQueue, lang: str = "en", idle_s: float = 60,
                 done_idle_s: float = 20, region: str = "US", poll_s: float = 15, retry_s: float = 10, *,
                 warn_s: float = 30, speaker: Speaker | None = None, read_aloud: bool = False,
                 large: bool = False, contrast: bool = False, demo: DemoNote | None = None) -> None:
        super().__init__()
        self.demo = demo
        self.api = api
        self.queue = queue
        self.default_lang = lang
        self.idle_s = idle_s
        self.done_idle_s = done_idle_s
        self.warn_s = warn_s
        self.region = region
        self.poll_s = poll_s
        self.retry_s = retry_s
        self.speaker = speaker if speaker is not None else Speaker()
        self.defaults = Session(lang=lang, read_aloud=read_aloud, large=large, contrast=contrast)
        self.session = self.fresh_session()
        self.clock = time.monotonic
        self.last_input = self.clock()
        self._delivering = False  # a delivery worker is running
        self._deliver_again = False  # asked for while it ran
        self._asking_name = False
        self._recalled_name = False  # the name the server gave last time has been looked up
        self._name_heard = False  # the server has told the name since this kiosk started

    def on_mount(self) -> None:
        self.push_screen(WelcomeScreen())
        self.set_interval(min(0.5, self.idle_s / 4, self.done_idle_s / 4), self.idle_tick)
        self.set_interval(self.retry_s, self.retry)
        self.deliver()  # whatever an earlier run left queued
        self.ask_clinic_name()
        if not self.is_headless and not self.is_web:  # served to a browser (kiosk/web.py): no terminal
            self.set_interval(1.0, self.check_terminal)

    def check_terminal(self) -> None:
        """Leave when the terminal is gone. A kiosk started under `make` (or by anything that
        does not pass on the hang-up signal) otherwise outlives its closed terminal with its
        input thread spinning on a dead tty: a core at 100 % and the demo's server left running."""
        if not terminal_alive():
            log.warning("the kiosk's terminal is gone: exiting")
            self.exit()

    async def on_unmount(self) -> None:
        await self.speaker.close()
        await self.api.close()

    # Navigation and privacy ---------------------------------------------------------------

    def go(self, screen: Screen[None]) -> None:
        """Show `screen` in place of the current one (closing any open question first)."""
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(screen)

    def fresh_session(self) -> Session:
        """A new client's session: the kiosk's own language and modes, nothing typed."""
        d = self.defaults
        return Session(lang=d.lang, read_aloud=d.read_aloud, large=d.large, contrast=d.contrast)

    def start_over(self) -> None:
        """Back to Welcome, forgetting everything the last client typed (and their modes)."""
        self.session = self.fresh_session()
        self.speaker.stop()
        self.touch()
        self.go(WelcomeScreen())

    def touch(self) -> None:
        self.last_input = self.clock()

    def say(self, text: str) -> None:
        """Say `text` in the client's language, if they asked for reading aloud."""
        if self.session.read_aloud and text.strip():
            self.speaker.say(self.session.lang, text)

    # Time-outs: a warning first, then the reset ---------------------------------------------

    def client_screen(self) -> Screen[object]:
        """The screen under any time-out warning."""
        return next(s for s in reversed(self.screen_stack) if not isinstance(s, MoreTime))

    def idle_limit(self) -> float:
        """Idle seconds before the warning: shorter on the done screen (nothing left to type)."""
        return self.done_idle_s if isinstance(self.client_screen(), DoneScreen) else self.idle_s

    def reset_at(self) -> float:
        """When, on `clock()`, the kiosk starts over unless someone touches it."""
        return self.last_input + self.idle_limit() + self.warn_s

    def idle_tick(self) -> None:
        if not self.screen_stack:  # shutting down: the screens go before the timers stop
            return
        warning = self.screen if isinstance(self.screen, MoreTime) else None
        fresh = isinstance(self.client_screen(), WelcomeScreen) and self.session == self.fresh_session()
        idle = self.clock() - self.last_input
        if fresh:
            if warning is not None:
                warning.keep_going()
        elif self.clock() >= self.reset_at():
            self.start_over()
        elif idle >= self.idle_limit():
            if warning is None:
                self.push_screen(MoreTime(lambda: self.reset_at() - self.clock(), self.touch))
        elif warning is not None:
            warning.keep_going()  # touched meanwhile (a key, a tap the dialog did not see)

    # Network ------------------------------------------------------------------------------

    async def send(self, kind: Kind, payload: JSON) -> Submitted:
        """Check-in, walk-in or urgent call through the offline queue.

        Online, the client gets the server's answer. A kiosk that knows it is offline (the
        last request could not reach the server and the queue has not drained since), or
        has requests still queued or on their way, only queues it: the client is not kept
        waiting for a timeout, and the retry loop delivers it in order.
        """
        sent = await self.queue.submit(self.api, kind, payload, offline=not self.online)
        if sent.tried:
            self.online = sent.answer is not None
        elif self.online:
            self.deliver()  # queued behind others while online: send it with them, not on the next tick
        self.queued = await self.queue.pending_count()
        return sent

    def retry(self) -> None:
        self.deliver()
        self.ask_clinic_name()

    def ask_clinic_name(self) -> None:
        """The clinic's name for the top bar, asked until the server has told it once."""
        if not self._name_heard and not self._asking_name:
            self._asking_name = True
            self.run_worker(self._ask_clinic_name(), group="clinic", exit_on_error=False)

    async def _ask_clinic_name(self) -> None:
        """Asked of the server; until it answers, the name it gave last time (kept in the queue
        file, so a kiosk restarted while the server is down still names the clinic)."""
        try:
            if not self._recalled_name:
                self._recalled_name = True
                self.clinic_name = self.clinic_name or await self.queue.recall("clinic_name") or ""
            name = (await self.api.clinic()).get("name")
            if isinstance(name, str) and name.strip():
                self.clinic_name = " ".join(name.split())[:80]
                self._name_heard = True
                await self.queue.remember("clinic_name", self.clinic_name)
        except (KioskError, sqlite3.Error, OSError) as e:  # offline, an older server: the top bar keeps what it had
            log.info("clinic name not heard yet: %r", e)
        finally:
            self._asking_name = False

    def deliver(self) -> None:
        """Deliver the queue in a worker, unless one is at it (it then goes round once more)."""
        self._deliver_again = True
        if not self._delivering:
            self._delivering = True
            self.run_worker(self._deliver(), group="deliver", exit_on_error=False)

    async def _deliver(self) -> None:
        try:
            while self._deliver_again:
                self._deliver_again = False
                if await self.queue.pending_count() == 0:
                    self.queued = 0
                    continue
                self.queued = await self.queue.deliver(self.api)
                self.online = self.queued == 0
                if self.queued:
                    break  # still unreachable: the next retry tick tries again
        finally:
            self._delivering = False

    # What the screens ask for (kiosk/messages.py) ---------------------------------------------

    def on_go(self, message: m.Go) -> None:
        self.go(message.screen)

    def on_start_over(self, message: m.StartOver) -> None:
        self.start_over()

    def on_touched(self, message: m.Touched) -> None:
        self.touch()

    def on_speak(self, message: m.Speak) -> None:
        self.say(message.text)

    def on_stop_speaking(self, message: m.StopSpeaking) -> None:
        self.speaker.stop()

    def on_ask(self, message: m.Ask) -> None:
        self.push_screen(message.modal, message.answered)

    def on_failed(self, message: m.Failed) -> None:
        self.handle_failure(message.error)

    def on_submit(self, message: m.Submit) -> None:
        # Never cancelled by a later request: a tapped check-in is sent (or queued) whatever follows.
        self.run_worker(self._submit(message), group=REQUESTS, exit_on_error=False)

    async def _submit(self, message: m.Submit) -> None:
        message.answer(m.Submit.Sent(await self.send(message.kind, message.payload)))

    def on_look_up(self, message: m.LookUp) -> None:
        self.run_worker(self._look_up(message), group=REQUESTS, exit_on_error=False)

    async def _look_up(self, message: m.LookUp) -> None:
        # Known offline, a lookup would only wait out the timeout: the screen takes the number
        # as a check-in by phone instead, as it does when the lookup finds the server gone.
        if not self.online:
            message.answer(m.LookUp.Found(None))
            return
        try:
            found = await self.api.lookup(message.number)
        except ServerUnreachable:
            self.online = False
            message.answer(m.LookUp.Found(None))
            return
        self.online = True
        message.answer(m.LookUp.Found(found))

    def on_refresh(self, message: m.Refresh) -> None:
        self.run_worker(self._refresh(message), group=REQUESTS, exit_on_error=False)

    async def _refresh(self, message: m.Refresh) -> None:
        answers: dict[str, JSON | None] = {}
        for appointment in message.appointments:
            try:
                answers[appointment] = await self.api.visit(appointment)
            except KioskError:
                answers[appointment] = None  # the screen keeps the last estimate it showed
        message.answer(m.Refresh.Fresh(answers))

    def on_outcome(self, message: m.Outcome) -> None:
        self.run_worker(self._outcome(message), group=REQUESTS, exit_on_error=False)

    async def _outcome(self, message: m.Outcome) -> None:
        state, answer, _ = await self.queue.outcome(message.key)
        message.answer(m.Outcome.Known(state, answer))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The one place a failed request ends up: the client sees a friendly screen.
        if event.worker.group == REQUESTS and event.state == WorkerState.ERROR and event.worker.error is not None:
            self.handle_failure(event.worker.error)

    def handle_failure(self, error: BaseException) -> None:
        """Every failed worker ends here: log it, show the client a kind screen."""
        log.error("kiosk worker failed: %r", error, exc_info=error)
        self.go(ErrorScreen(busy=isinstance(error, ApiError) and error.status == 429))


def terminal_alive(fd: int = 0) -> bool:
    """Whether `fd` is still a working terminal (after a hang-up it stops being one)."""
    try:
        return os.isatty(fd)
    except (OSError, ValueError):
        return False


def default_queue_path() -> Path:
    state = os.environ.get("STATE_DIRECTORY") or os.environ.get("XDG_STATE_HOME")
    base = Path(state) if state else Path.home() / ".local" / "state"
    return (base if os.environ.get("STATE_DIRECTORY") else base / "waitroom") / "kiosk-queue.db"


def make_kiosk(server_url: str, token: str, queue_path: str | Path | None = None, *,
               api: ClinicClient | None = None, lang: str = "en", idle_s: float = 60, done_idle_s: float = 20,
               warn_s: float = 30, region: str = "US", poll_s: float = 15, retry_s: float = 10,
               speaker: Speaker | None = None, read_aloud: bool = False, large: bool = False,
               contrast: bool = False, demo: DemoNote | None = None) -> KioskApp:
    """The one way to build a kiosk: the CLI, the tests and the snapshot app all use it."""
    return KioskApp(
        api if api is not None else HttpClinicClient(server_url, token),
        OfflineQueue(queue_path if queue_path is not None else default_queue_path()),
        lang=lang, idle_s=idle_s, done_idle_s=done_idle_s, region=region, poll_s=poll_s, retry_s=retry_s,
        warn_s=warn_s, speaker=speaker, read_aloud=read_aloud, large=large, contrast=contrast, demo=demo,
    )


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "yes", "true", "on")


def run_kiosk(server_url: str | None = None, token: str | None = None, queue_path: str | Path | None = None,
              *, lang: str | None = None, region: str | None = None, read_aloud: bool | None = None,
              large: bool | None = None, contrast: bool | None = None, demo: DemoNote | None = None) -> None:
    """Run the kiosk full screen. Unset arguments come from WAITROOM_SERVER, WAITROOM_TOKEN,
    WAITROOM_KIOSK_QUEUE, WAITROOM_LANG, WAITROOM_REGION, and the default modes from
    WAITROOM_READ_ALOUD, WAITROOM_LARGE_TEXT and WAITROOM_HIGH_CONTRAST (1/yes/true/on)."""
    env = os.environ
    server_url = server_url or env.get("WAITROOM_SERVER")
    token = token or env.get("WAITROOM_TOKEN")
    if not server_url or not token:
        raise SystemExit("waitroom kiosk: give --server and --token (or WAITROOM_SERVER and WAITROOM_TOKEN)")
    app = make_kiosk(server_url, token, queue_path or env.get("WAITROOM_KIOSK_QUEUE") or None,
                     lang=lang or env.get("WAITROOM_LANG", "en"), region=region or env.get("WAITROOM_REGION", "US"),
                     read_aloud=env_flag("WAITROOM_READ_ALOUD") if read_aloud is None else read_aloud,
                     large=env_flag("WAITROOM_LARGE_TEXT") if large is None else large,
                     contrast=env_flag("WAITROOM_HIGH_CONTRAST") if contrast is None else contrast, demo=demo)
    app.run()
