"""Outage: the kiosk with the server unreachable, and the notifier with its provider failing.

    .venv/bin/python bench/bench_outage.py                       # both parts
    .venv/bin/python bench/bench_outage.py --part kiosk --checkins 100
    .venv/bin/python bench/bench_outage.py --part notifier --outage-min 10 --defaults

Kiosk: the real Textual kiosk app (headless, driven by a Pilot at its real screen size)
talks to the real server through a small TCP "network" on loopback that can be down
(connection refused), a black hole (accepts, never answers: the kiosk's timeouts decide) or
lossy (forwards the request, drops the answer: the server has it, the kiosk does not know).
During an outage of 10 minutes of clinic time (the server's ManualClock is moved on, the
kiosk's retry interval is scaled down) `--checkins` walk-ins are made: some by tapping
through every screen with the Pilot, the rest through the app's own `send` (its offline
queue). Then the network is back (first lossy, then up). Then, with the kiosk online again,
the network turns into a black hole out of the blue and `--blackhole-again` walk-ins are
tapped through: the first finds it out (the kiosk's timeout), the rest should be queued at
once. Printed: how many were recorded, doubled, out of order; the kiosk's failures; the
tap -> next screen latency per phase, and the last tap (the one that sends) -> done screen.

Notifier: the outbox worker sends texts to the fake Twilio of `tests/fake_twilio.py` on
loopback, which answers 500, 429, timeouts and the two "accepted, but you never heard"
faults for `--outage-min` minutes of a clock that runs `--speed` times real time. Printed:
texts accepted once, twice, never; end states; time from recovery to the last text. With
`--defaults` the worker runs with the server's real settings (backoff 2 s doubling to 300 s,
8 attempts, 30 s lookup grace), otherwise with fast ones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web

from bench.bench_crash import START, free_port, seed

# -- the network between the kiosk and the server -----------------------------------------------


class Network:
    """A TCP proxy on loopback in front of the server: up, down, black hole or lossy."""

    def __init__(self, upstream_port: int, port: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.port = port or free_port()
        self.mode = "up"
        self.lose_answers = 0  # lossy: drop the answers of this many more connections
        self.answers_lost = 0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def set(self, mode: str) -> None:
        """"up", "lossy", "blackhole" or "down" (nothing listens: connection refused)."""
        self.mode = mode
        for w in list(self._conns):  # a changed network breaks the connections it carried
            w.close()
        self._conns.clear()
        if mode == "down":
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
                self._server = None
        elif self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def close(self) -> None:
        await self.set("down")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            if self.mode == "blackhole":
                while await reader.read(65536):
                    pass  # swallow the request, never answer
                return
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            lossy = self.mode == "lossy" and self.lose_answers > 0
            if lossy:
                self.lose_answers -= 1
            try:
                await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer, drop=lossy))
            finally:
                up_w.close()
        except (ConnectionError, OSError):
            pass
        finally:
            self._conns.discard(writer)
            writer.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, drop: bool = False) -> None:
        while data := await src.read(65536):
            if drop:
                self.answers_lost += 1
                dst.close()  # the server answered; the kiosk never hears it
                return
            dst.write(data)
            await dst.drain()
        dst.close()


@contextlib.asynccontextmanager
async def clinic_server(workdir: Path) -> AsyncIterator[tuple[Any, dict[str, str], int, Path]]:
    """The real app on a loopback port with a ManualClock: (clock, tokens, port, db)."""
    from server.app import create_app
    from server.config import Config, ManualClock

    db = workdir / "clinic.db"
    tokens = await seed(db)
    clock = ManualClock(START)
    port = free_port()
    config = Config(db_path=str(db), clock=clock, secret="bench-secret", public_url=f"http://127.0.0.1:{port}",
                    host="127.0.0.1", port=port, run_notifier=False,
                    # 100 requests in 10 minutes is five times the kiosk budget's default (20 a
                    # minute, shared by all kiosk routes): lifted here so the figures measure the
                    # network, not the budget. Pacing by the budget: tests/test_kiosk.py (burst).
                    kiosk_lookups_per_minute=100_000)
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield clock, tokens, port, db
    finally:
        await runner.cleanup()


# -- the kiosk ------------------------------------------------------------------------------------


@dataclass
class KioskOutcome:
    made: int = 0
    by_pilot: int = 0
    made_again: int = 0  # of `made`: in the second black hole, with the kiosk online before it
    want: list[str] = field(default_factory=list)  # pet names of the outage walk-ins, in the order made
    recorded: int = 0
    doubled: int = 0
    out_of_order: int = 0
    failures: list[str] = field(default_factory=list)
    offline_done_screens: int = 0
    queued_peak: int = 0
    answers_lost: int = 0
    drain_s: float = 0.0
    drain_again_s: float = 0.0
    # phase -> seconds from a tap to the screen it leads to ("done": the last tap, which sends)
    taps: dict[str, list[float]] = field(default_factory=dict)
    done: dict[str, list[float]] = field(default_factory=dict)
    # phase -> for each check-in or walk-in sent then: did it try the network (False: straight
    # into the queue, because the kiosk knew it was offline)
    tried: dict[str, list[bool]] = field(default_factory=dict)
    phase: str = ""


def _letters(i: int) -> str:
    """A pet name the letter keypad can type, unique per index: 0 -> KAA."""
    return "K" + chr(65 + i // 26 % 26) + chr(65 + i % 26)


async def _until(pilot: Any, ok: Callable[[], bool], seconds: float = 30) -> None:
    """Until `ok()`, bounded by time (a count of short pauses is a few seconds on an idle
    machine and far less on a loaded one)."""
    deadline = time.monotonic() + seconds
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"the kiosk did not get there (on {type(pilot.app.screen).__name__})")
        await pilot.pause(0.005)


async def _tap(pilot: Any, selector: str, then: Callable[[], bool], out: list[float]) -> None:
    """Tap, and time until the kiosk shows what the tap leads to."""
    t0 = time.perf_counter()
    await pilot.click(selector)
    await _until(pilot, then)
    out.append(time.perf_counter() - t0)
    await pilot.pause()  # let the new screen lay out before the next tap


async def _walkin_by_pilot(pilot: Any, pet: str, phase: str, res: KioskOutcome,
                           before_send: Callable[[], Awaitable[None]] | None = None) -> None:
    """One walk-in tapped through every screen; `before_send` runs before the last tap (the one
    that sends it): the network can drop while a client is checking in."""
    from kiosk.screens.done import DoneScreen
    from kiosk.screens.walkin import WalkinScreen
    from kiosk.screens.welcome import WelcomeScreen

    app = pilot.app
    taps = res.taps.setdefault(phase, [])

    def on_step(step: str) -> Callable[[], bool]:
        return lambda: isinstance(app.screen, WalkinScreen) and app.screen.step == step

    await _tap(pilot, "#walkin", on_step("name"), taps)
    for key in "JO":
        await pilot.click(f"#key-{key}")
    await _tap(pilot, "#key-ok", on_step("pet"), taps)
    for key in pet:
        await pilot.click(f"#key-{key}")
    await _tap(pilot, "#key-ok", on_step("species"), taps)
    await _tap(pilot, "#species-dog", on_step("reason"), taps)
    if before_send is not None:
        await before_send()
    res.phase = phase
    await _tap(pilot, "#reason-sick", lambda: isinstance(app.screen, DoneScreen), res.done.setdefault(phase, []))
    if app.screen.offline:
        res.offline_done_screens += 1
    await _tap(pilot, "#finish", lambda: isinstance(app.screen, WelcomeScreen), taps)


async def kiosk_outage(workdir: Path, *, checkins: int = 100, pilot_every: int = 10, blackhole_share: float = 0.1,
                       lose_answers: int = 3, timeout_s: float = 0.3, outage_min: float = 10.0,
                       blackhole_again: int = 4) -> KioskOutcome:
    """`checkins` walk-ins at the kiosk while the server is unreachable, then the network is back;
    then `blackhole_again` walk-ins tapped through a black hole that starts while it is online."""
    import sqlite3

    from kiosk.api import HttpClinicClient
    from kiosk.app import SIZE, make_kiosk

    res = KioskOutcome()
    async with clinic_server(workdir) as (clock, tokens, port, db):
        net = Network(port)
        await net.set("up")
        api = HttpClinicClient(net.url, tokens["kiosk"], timeout_s=timeout_s)
        app = make_kiosk(net.url, tokens["kiosk"], workdir / "kiosk-queue.db", api=api, poll_s=0.2, retry_s=0.2)
        original = app.handle_failure

        def failed(error: BaseException) -> None:
            res.failures.append(repr(error))
            original(error)

        app.handle_failure = failed  # type: ignore[method-assign]
        real_send = app.send

        async def send(kind: Any, payload: Any) -> Any:
            sent = await real_send(kind, payload)
            res.tried.setdefault(res.phase, []).append(sent.tried)
            return sent

        app.send = send  # type: ignore[method-assign]
        async with app.run_test(size=SIZE) as pilot:
            # Online first: the same taps give the baseline latency.
            for i in range(2):
                await _walkin_by_pilot(pilot, "ON" + chr(65 + i), "online", res)
            await net.set("down")
            step = timedelta(minutes=outage_min) / checkins
            blackhole_from = int(checkins * (1 - blackhole_share))
            for i in range(checkins):
                if i == blackhole_from:
                    await net.set("blackhole")
                phase = "blackhole" if i >= blackhole_from else "down"
                pet = _letters(i)
                if i % pilot_every == pilot_every - 1:
                    await _walkin_by_pilot(pilot, pet, phase, res)
                    res.by_pilot += 1
                else:
                    t0 = time.perf_counter()
                    res.phase = phase + " (send)"
                    sent = await app.send("walkin", {"name": "Jo", "pet": pet, "species": "dog", "reason": "sick"})
                    res.done.setdefault(phase + " (send)", []).append(time.perf_counter() - t0)
                    if sent.answer is not None:
                        res.failures.append(f"walk-in {pet} was answered while the server was unreachable")
                res.made += 1
                res.want.append(pet)
                res.queued_peak = max(res.queued_peak, app.queued)
                clock.advance(seconds=step.total_seconds())
            # Back: first answers get lost on the way (the server has them), then all is well.
            net.lose_answers = lose_answers
            t0 = time.perf_counter()
            await net.set("lossy")
            await _until(pilot, lambda: app.queued == 0 and app.online, seconds=120)
            res.drain_s = time.perf_counter() - t0
            res.answers_lost = net.answers_lost
            await net.set("up")
            for i in range(2):  # and it still works afterwards
                await _walkin_by_pilot(pilot, "AF" + chr(65 + i), "after", res)
            # A black hole while the kiosk is online, starting as the first client is checking
            # in: their walk-in waits out the timeout (that is how the kiosk finds out), the next
            # ones should not. (It starts just before that client's last tap: started earlier, a
            # slow tapper - or a loaded machine - lets the kiosk's own poll find out first, and
            # then nobody waits: right for a kiosk, but not the case this measures.)
            async def blackhole() -> None:
                await net.set("blackhole")
                await asyncio.sleep(0.05)  # the kiosk's pooled connections see theirs closed

            for i in range(blackhole_again):
                pet = "BH" + chr(65 + i)
                await _walkin_by_pilot(pilot, pet, "blackhole, finding out" if i == 0 else "blackhole, known", res,
                                       before_send=blackhole if i == 0 else None)
                res.made += 1
                res.made_again += 1
                res.by_pilot += 1
                res.want.append(pet)
            t0 = time.perf_counter()
            await net.set("up")
            await _until(pilot, lambda: app.queued == 0 and app.online, seconds=120)
            res.drain_again_s = time.perf_counter() - t0
            await _walkin_by_pilot(pilot, "AFZ", "after", res)  # back online by itself
        await net.close()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        pets = [r[0] for r in conn.execute(
            "SELECT json_extract(data, '$.pet') FROM events WHERE type = 'walkin' ORDER BY seq")]
    # The keypad writes names in name case ("Kae"): compare in capitals.
    ours = [p.upper() for p in pets if p.upper() in set(res.want)]
    res.recorded = len(set(ours))
    res.doubled = len(ours) - len(set(ours))
    seen = [p for i, p in enumerate(ours) if p not in ours[:i]]
    res.out_of_order = sum(1 for a, b in zip(seen, res.want, strict=False) if a != b)
    return res


# -- the notifier -----------------------------------------------------------------------------------


class FastClock:
    """A clock from `start` that runs `speed` times real time (the worker's backoffs follow it)."""

    def __init__(self, start: datetime, speed: float) -> None:
        self.start, self.speed, self.t0 = start, speed, time.perf_counter()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.perf_counter() - self.t0) * self.speed)


class OutageFaults:
    """Stands in for FakeTwilio.faults: while the clock is before `until`, every create gets
    the next fault of `cycle`; then the `after` faults, one per create (a flapping recovery)."""

    def __init__(self, clock: FastClock, until: datetime, cycle: list[str], after: list[str]) -> None:
        self.clock, self.until, self.cycle, self.after = clock, until, cycle, list(after)
        self.served = 0

    def __bool__(self) -> bool:
        return self.clock.now() < self.until or bool(self.after)

    def pop(self, _index: int = 0) -> str:
        self.served += 1
        if self.clock.now() < self.until:
            return self.cycle[self.served % len(self.cycle)]
        return self.after.pop(0)


# While down: errors that provably did not create the text (429) and ones that leave it
# unknown (500, timeout: looked up before any resend). On the way back: Twilio created the
# text but we never heard so.
OUTAGE = ["500", "429", "timeout"]
RECOVERY = ["accept_then_500", "accept_then_timeout"] * 3


@dataclass
class NotifierOutcome:
    texts: int = 0
    accepted_once: int = 0
    accepted_twice: int = 0
    never_accepted: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    faults_served: int = 0
    creates: int = 0
    recovery_to_last_s: float = 0.0  # clock seconds from the provider's recovery to the last text
    real_s: float = 0.0


async def notifier_outage(workdir: Path, *, texts: int = 30, outage_min: float = 10.0, speed: float = 60.0,
                          defaults: bool = False, timeout_s: float = 0.3, limit_s: float = 60.0,
                          whole_api: bool = False) -> NotifierOutcome:
    """Queue `texts`, let the provider fail for `outage_min` clock minutes, run until all settle.

    `whole_api`: Twilio's list API is down too for the outage (the worker cannot look up
    whether an unanswered create went through)."""
    from notifier import outbox
    from notifier.providers import TwilioProvider
    from notifier.worker import Worker, WorkerSettings
    from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, open_outbox_db, sqlite_transaction

    res = NotifierOutcome(texts=texts)
    start = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    clock = FastClock(start, speed)
    recovery = start + timedelta(minutes=outage_min)
    if defaults:
        settings = WorkerSettings()
    else:
        settings = WorkerSettings(backoff_base=1.0, backoff_max=20.0, poll_interval=2.0, max_attempts=100,
                                  reconcile_grace=5.0)
    conn = await open_outbox_db(str(workdir / "outbox.db"))
    t_real = time.perf_counter()
    try:
        async with FakeTwilio(slow_seconds=2 * timeout_s) as twilio:
            faults = OutageFaults(clock, recovery, OUTAGE, RECOVERY)
            twilio.fail_lookups = whole_api
            twilio.faults = faults  # type: ignore[assignment]
            tx = sqlite_transaction(conn)
            async with tx() as c:
                # Stale after 30 min, as every delay text the policy decides (outbox.decision_text).
                expires = clock.now() + timedelta(minutes=30)
                await outbox.enqueue(c, [outbox.NewText(f"outage-{i}", f"+1312555{1000 + i:04d}",
                                                        f"Text {i}: Dr. Ruiz is running late.", "delay",
                                                        expires_at=expires)
                                         for i in range(texts)], clock.now())
            provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number="+13125550100",
                                      base_url=twilio.base_url, timeout=timeout_s)
            # The worker's poll and backoffs are in clock seconds; scale them to real time.
            worker = Worker(tx, provider, clock.now, _scaled(settings, speed))
            task = asyncio.create_task(worker.run())
            try:
                while time.perf_counter() - t_real < limit_s:
                    await asyncio.sleep(0.05)
                    if clock.now() >= recovery:
                        twilio.fail_lookups = False
                    async with tx() as c:
                        rows = await outbox.rows(c)
                    if clock.now() > recovery and not any(r.status in ("queued", "sending") for r in rows):
                        break
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await provider.close()
            res.real_s = time.perf_counter() - t_real
            res.counts = dict(outbox.counts(rows))
            res.faults_served = faults.served
            res.creates = twilio.requests
            by_to: dict[str, int] = {}
            for m in twilio.accepted:
                by_to[m["to"]] = by_to.get(m["to"], 0) + 1
            res.accepted_once = sum(1 for n in by_to.values() if n == 1)
            res.accepted_twice = sum(1 for n in by_to.values() if n > 1)
            res.never_accepted = texts - len(by_to)
            last = max((r.next_attempt_at for r in rows if r.status in ("sent", "delivered")), default=recovery)
            updated = [datetime.fromisoformat(str(u[0])) for u in await conn.execute_fetchall(
                "SELECT MAX(updated_at) FROM outbox WHERE status IN ('sent', 'delivered')") if u[0]]
            res.recovery_to_last_s = max(0.0, ((updated[0] if updated else last) - recovery).total_seconds())
    finally:
        await conn.close()
    return res


def _scaled(settings: Any, speed: float) -> Any:
    """The worker sleeps real seconds on the poll interval; its due times follow the clock."""
    from dataclasses import replace

    return replace(settings, poll_interval=settings.poll_interval / speed)


# -- printing --------------------------------------------------------------------------------------


def _ms(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"median {statistics.median(xs) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms (n={len(xs)})"


async def run(part: str, args: argparse.Namespace, workdir: Path) -> int:
    ok = True
    if part in ("kiosk", "both"):
        k = await kiosk_outage(workdir, checkins=args.checkins, timeout_s=args.timeout,
                               blackhole_again=args.blackhole_again)
        print(f"kiosk: HTTP timeout {args.timeout:g} s")
        print(f"kiosk: check-ins made during a {10:.0f}-min outage   {k.made - k.made_again} "
              f"(+{k.made_again} in a second black hole; {k.by_pilot} tapped through by Pilot)")
        print(f"kiosk: recorded / doubled / out of order     {k.recorded} / {k.doubled} / {k.out_of_order}")
        print(f"kiosk: failures shown / queued at the peak   {len(k.failures)} / {k.queued_peak}")
        print(f"kiosk: answers lost on the way back          {k.answers_lost} (resent, deduped by key)")
        print(f"kiosk: network back -> queue empty           {k.drain_s:.2f} s (second black hole: "
              f"{k.drain_again_s:.2f} s)")
        for phase, xs in k.taps.items():
            print(f"kiosk: tap -> next screen, {phase:22s}       {_ms(xs)}")
        for phase, xs in k.done.items():
            print(f"kiosk: last tap -> done screen, {phase:22s} {_ms(xs)}")
        ok = ok and k.recorded == k.made and k.doubled == 0 and k.out_of_order == 0 and not k.failures
    if part in ("notifier", "both"):
        n = await notifier_outage(workdir, texts=args.texts, outage_min=args.outage_min, speed=args.speed,
                                  defaults=args.defaults, whole_api=args.whole_api)
        label = ("default" if args.defaults else "fast") + " worker settings"
        down = "provider failing" + (", its list API down too," if args.whole_api else "")
        print(f"notifier: {n.texts} texts, {down} {args.outage_min:.0f} min ({label}, clock x{args.speed:.0f})")
        print(f"notifier: creates / faults answered          {n.creates} / {n.faults_served}")
        print(f"notifier: accepted once / twice / never      {n.accepted_once} / {n.accepted_twice} / "
              f"{n.never_accepted}")
        print(f"notifier: end states                         {n.counts}")
        print(f"notifier: recovery -> last text sent         {n.recovery_to_last_s:.0f} s (clock), "
              f"run {n.real_s:.1f} s")
        # The claim: every text reaches the provider once after it recovers, none held.
        ok = ok and n.accepted_twice == 0 and n.never_accepted == 0 and n.counts.get("held", 0) == 0
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["kiosk", "notifier", "both"], default="both")
    p.add_argument("--checkins", type=int, default=100)
    p.add_argument("--timeout", type=float, default=4.0, help="kiosk HTTP timeout, s (the kiosk's default: 4)")
    p.add_argument("--blackhole-again", type=int, default=4,
                   help="walk-ins tapped through a second black hole that starts while the kiosk is online")
    p.add_argument("--texts", type=int, default=30)
    p.add_argument("--outage-min", type=float, default=10.0)
    p.add_argument("--speed", type=float, default=60.0)
    p.add_argument("--defaults", action="store_true", help="the server's real worker settings")
    p.add_argument("--whole-api", action="store_true", help="Twilio's list API is down too during the outage")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="waitroom-outage-") as d:
        return asyncio.run(run(args.part, args, Path(d)))


if __name__ == "__main__":
    sys.exit(main())
