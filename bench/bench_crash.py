"""Crash: a real `waitroom serve` killed with SIGKILL mid-burst, restarted, many times over.

    .venv/bin/python bench/bench_crash.py              # 50 cycles
    .venv/bin/python bench/bench_crash.py --cycles 200 --seed 3

    .venv/bin/python bench/bench_crash.py --texts      # 50 cycles with delay texts to a fake Twilio

Each cycle starts `waitroom serve` on a file database on loopback, sends a burst of
POST /api/events from several concurrent clients (check-ins, starts, ends, walk-ins,
emergencies and their start/end), kills the server with SIGKILL at a random moment, starts
it again and checks that every event that was answered 2xx is in the events table (same
seq, type and visit) and that each visit's state (GET /api/appointments/{id}) is at least
as far along as the acknowledged events say. `tests/test_reliability_crash.py` runs a few
cycles of the same code.

With `--texts` the server runs its notifier with `WAITROOM_SMS_PROVIDER=twilio` pointed at
the fake Twilio of `tests/fake_twilio.py` (in this process, on loopback), the day starts at
08:05 (texts are never sent earlier) and emergencies run 30-120 min, so the bursts make
delay texts for the demo clients (most have a mobile and consent). After every restart: no
outbox row and no (number, body) was accepted twice by the fake. After the last cycle the
server is left to settle and every outbox row must end sent/delivered, failed with a
reason reception sees, or held for reception; and the fake accepted exactly the rows the
outbox calls sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

TZ = ZoneInfo("America/Chicago")
DAY = date(2026, 3, 2)
START = datetime(2026, 3, 2, 7, 50, tzinfo=TZ)
ROLES = ("pms", "kiosk", "reception", "display")
# How far along each status is: an acknowledged event promises at least this much.
RANK = {"booked": 0, "waiting": 1, "in_consult": 2, "done": 3, "noshow": 3, "cancelled": 3}
AFTER = {"checkin": 1, "walkin": 1, "emergency": 1, "start": 2, "emergency_start": 2, "end": 3, "emergency_end": 3}

TEXTS_START = datetime(2026, 3, 2, 8, 5, tzinfo=TZ)  # texts go out from 08:00 client time
CLINIC_NUMBER = "+13125550100"


async def seed(db: Path | str, *, history_days: int = 10) -> dict[str, str]:
    """The demo clinic's day (3 vets, 08:00-17:00) in `db` (a path or any `--db` spec); a token per role."""
    from server.demo import seed_day
    from server.store import open_store

    store = await open_store(str(db))
    try:
        async with store.transaction() as conn:
            return await seed_day(conn, DAY, "America/Chicago", history_days=history_days, token_prefix="bench")
    finally:
        await store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command() -> list[str]:
    """`waitroom serve` as installed beside this Python, else the same CLI as a module."""
    script = Path(sys.executable).with_name("waitroom")
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]


class ServeProcess:
    """One `waitroom serve` subprocess on loopback, with the demo clock started at `clock`."""

    def __init__(self, db: Path | str, port: int, clock: datetime, log: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.db, self.port, self.clock = db, port, clock
        self.log = log
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        """Start the process (without waiting for it to answer)."""
        err = self.log.open("ab") if self.log else None
        try:
            self.proc = subprocess.Popen(
                [*serve_command(), "serve", "--db", str(self.db), "--host", "127.0.0.1", "--port", str(self.port),
                 "--clock", self.clock.isoformat()],
                stdout=subprocess.DEVNULL, stderr=err or subprocess.DEVNULL,
                env={**_clean_env(), "WAITROOM_SECRET": "bench-secret", **self.env})
        finally:
            if err:
                err.close()

    async def start(self, timeout: float = 20.0) -> float:
        """Start and wait until /api/health answers; returns seconds taken."""
        t0 = time.perf_counter()
        self.spawn()
        assert self.proc is not None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as s:
            while time.perf_counter() - t0 < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"waitroom serve exited with {self.proc.returncode}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with s.get(f"{self.url}/api/health") as r:
                        if r.status == 200:
                            return time.perf_counter() - t0
                await asyncio.sleep(0.05)
        raise TimeoutError("waitroom serve did not come up")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no chance to flush anything."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


def _clean_env() -> dict[str, str]:
    """This environment without the developer's own waitroom settings (a real Twilio account!)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("WAITROOM_")}


@dataclass
class Ack:
    seq: int
    type: str
    visit: str


@dataclass
class CycleResult:
    sent: int = 0
    acked: list[Ack] = field(default_factory=list)
    refused: int = 0  # 4xx answers (none expected: the plan only sends valid events)
    errors: int = 0  # connection reset / refused: the kill
    restart_s: float = 0.0
    problems: list[str] = field(default_factory=list)


def _day_state(db: Path) -> dict[str, tuple[str, str]]:
    """visit id -> (kind, status) for every visit of the day, read straight from the file."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT id, kind, status FROM appointments WHERE day = ?", (DAY.isoformat(),))
        return {r[0]: (r[1], r[2]) for r in rows}


def _next_event(visit: str, kind: str, status: str) -> dict[str, Any] | None:
    em = kind == "emergency"
    if status == "booked":
        return {"type": "checkin", "appointment": visit}
    if status == "waiting":
        return {"type": "emergency_start", "id": visit} if em else {"type": "start", "appointment": visit}
    if status == "in_consult":
        return {"type": "emergency_end", "id": visit} if em else {"type": "end", "appointment": visit}
    return None


def _new_visit(rng: random.Random, cycle: int, long_emergencies: bool = False) -> dict[str, Any]:
    vet = rng.choice(["v1", "v2", "v3"])
    vid = f"c{cycle}-{uuid.uuid4().hex[:8]}"
    if rng.random() < 0.7:
        return {"type": "walkin", "appointment": {"id": f"w-{vid}", "vet": vet, "type": "sick", "pet": "Biscuit"}}
    # Long emergencies put a vet's booked clients well behind: the policy texts them.
    minutes = rng.choice([30, 60, 90, 120]) if long_emergencies else 30
    return {"type": "emergency", "id": f"e-{vid}", "vet": vet, "expected_min": minutes, "pet": "Rex"}


async def _worker(session: aiohttp.ClientSession, url: str, token: str, mine: dict[str, tuple[str, str]],
                  rng: random.Random, cycle: int, out: CycleResult, long_emergencies: bool = False) -> None:
    """Advance this worker's own visits (so no two workers race on one visit) and create new ones."""
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        live = [v for v, (k, s) in mine.items() if _next_event(v, k, s) is not None]
        if live and rng.random() < 0.75:
            v = rng.choice(live)
            body = _next_event(v, *mine[v])
        else:
            body = _new_visit(rng, cycle, long_emergencies)
        assert body is not None
        out.sent += 1
        try:
            async with session.post(f"{url}/api/events", json=body, headers=headers) as r:
                data = await r.json(content_type=None) if r.status < 500 else None
                if 200 <= r.status < 300:
                    assert data is not None
                    visit = str(data["appointment"])
                    out.acked.append(Ack(int(data["seq"]), str(data["type"]), visit))
                    created = {"walkin": "walkin", "emergency": "emergency"}
                    kind = created.get(body["type"], mine.get(visit, ("", ""))[0])
                    status = {1: "waiting", 2: "in_consult", 3: "done"}[AFTER[body["type"]]]
                    mine[visit] = (kind, status)
                elif r.status >= 500:
                    out.problems.append(f"{r.status} on {body}")
                else:
                    out.refused += 1
                    out.problems.append(f"{r.status} {data} on {body}")
        except (aiohttp.ClientError, ConnectionError, TimeoutError):
            out.errors += 1
            return  # the server is gone


def verify(db: Path, acked: list[Ack]) -> list[str]:
    """Every acknowledged event is in the log with the same seq, type and visit."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT seq, type, appointment_id FROM events")}
    problems = []
    for a in acked:
        got = rows.get(a.seq)
        if got != (a.type, a.visit):
            problems.append(f"acknowledged event {a} missing after restart (found {got})")
    return problems


async def verify_api(url: str, token: str, acked: list[Ack]) -> list[str]:
    """Each visit the acknowledged events touched is at least as far along through the API."""
    want: dict[str, int] = {}
    for a in acked:
        want[a.visit] = max(want.get(a.visit, 0), AFTER[a.type])
    problems = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        for visit, rank in want.items():
            async with s.get(f"{url}/api/appointments/{visit}") as r:
                if r.status != 200:
                    problems.append(f"GET /api/appointments/{visit}: {r.status} after restart")
                    continue
                status = (await r.json())["status"]
                if RANK[status] < rank:
                    problems.append(f"{visit} is {status} after restart, though an event moving it on was acked")
    return problems


async def crash_cycle(server: ServeProcess, tokens: dict[str, str], cycle: int, rng: random.Random, *,
                      workers: int = 8, kill_after: tuple[float, float] = (0.05, 0.6),
                      kill_after_acked: tuple[int, int] | None = None, twilio: Any = None) -> CycleResult:
    """One burst against a running server, a SIGKILL at a random moment, a restart, the checks.

    The kill lands `kill_after` seconds into the burst, or with `kill_after_acked`, once a
    random number of events in that range have been acknowledged (the tests: on a loaded
    machine a burst's first half second may see only a few answers, and a test must not
    depend on the machine's speed for how much the burst did)."""
    out = CycleResult()
    state = _day_state(server.db)
    visits = sorted(state)
    rng.shuffle(visits)
    shares: list[dict[str, tuple[str, str]]] = [{} for _ in range(workers)]
    for i, v in enumerate(visits):
        shares[i % workers][v] = state[v]
    conn = aiohttp.TCPConnector(limit=workers, force_close=False)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=10)) as session:
        tasks = [asyncio.create_task(_worker(session, server.url, tokens["reception" if i % 2 else "pms"],
                                             shares[i], random.Random(rng.random()), cycle, out,
                                             twilio is not None))
                 for i in range(workers)]
        if kill_after_acked is None:
            await asyncio.sleep(rng.uniform(*kill_after))
        else:
            target = rng.randint(*kill_after_acked)
            deadline = time.monotonic() + 60
            while len(out.acked) < target and time.monotonic() < deadline:
                _, pending = await asyncio.wait(tasks, timeout=0.005)  # (or sooner, when the burst is over)
                if not pending:
                    break
        server.kill()
        await asyncio.gather(*tasks)
    # The next start runs the clinic clock on from a later moment, so no event is "before" an earlier one.
    server.clock = server.clock + timedelta(minutes=3)
    out.restart_s = await server.start()
    out.problems += verify(server.db, out.acked)
    out.problems += await verify_api(server.url, tokens["reception"], out.acked)
    if twilio is not None:
        out.problems += check_texts_once(server.db, twilio)
    return out


def _outbox(db: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT id, dedupe_key, status, to_number, body, provider_sid, error_code, error_message "
                            "FROM outbox ORDER BY id").fetchall()


def _row_of(message: dict[str, Any]) -> int | None:
    """The outbox row a message the fake accepted was sent for (its StatusCallback names it)."""
    callback = str(message.get("status_callback") or "")
    _, _, row = callback.partition("row=")
    return int(row) if row.isdigit() else None


def check_texts_once(db: Path, twilio: Any) -> list[str]:
    """No outbox row (so no dedupe key: it is the row's unique key) and no (number, body)
    was accepted twice by the provider."""
    problems = []
    rows = [_row_of(m) for m in twilio.accepted]
    for row in {r for r in rows if rows.count(r) > 1}:
        problems.append(f"outbox row {row} was accepted by the provider {rows.count(row)} times")
    pairs = [(m["to"], m["body"]) for m in twilio.accepted]
    for to, body in {p for p in pairs if pairs.count(p) > 1}:
        problems.append(f"the same text went to {to} {pairs.count((to, body))} times: {body[:60]!r}")
    known = {r[0] for r in _outbox(db)}
    problems += [f"the provider accepted a text for outbox row {r}, which is not in the outbox" for r in rows
                 if r is not None and r not in known]
    return problems


@dataclass
class TextsOutcome:
    counts: dict[str, int]
    accepted: int
    settled_by_lookup: int
    problems: list[str]


async def settle_texts(server: ServeProcess, twilio: Any, timeout: float = 15.0) -> TextsOutcome:
    """Let the running server send what it has, then check that no text was silently dropped.

    Every row must end sent/delivered (and the provider has exactly those), failed with a
    reason (reception's list shows it) or held (reception decides). Rows a killed process
    left `sending` are looked up at the provider, and requeued only after a grace: the
    caller restarts the server with its clock past that grace first.
    """
    deadline = time.perf_counter() + timeout
    rows = _outbox(server.db)
    while time.perf_counter() < deadline:
        rows = _outbox(server.db)
        if not any(r[2] in ("queued", "sending") for r in rows):
            break
        await asyncio.sleep(0.1)
    problems = check_texts_once(server.db, twilio)
    counts: dict[str, int] = {}
    for rid, key, status, _to, _body, sid, code, message in rows:
        counts[status] = counts.get(status, 0) + 1
        if status in ("queued", "sending"):
            problems.append(f"outbox row {rid} ({key}) still {status}: neither sent nor shown to reception")
        elif status == "failed" and not (code and message):
            problems.append(f"outbox row {rid} failed without a reason reception could read")
        elif status in ("sent", "delivered") and not sid:
            problems.append(f"outbox row {rid} is {status} with no provider id")
    sent = {r[0] for r in rows if r[2] in ("sent", "delivered")}
    accepted = {_row_of(m) for m in twilio.accepted}
    held = {r[0] for r in rows if r[2] == "held"}
    problems += [f"outbox row {r} says sent, the provider never accepted it" for r in sorted(sent - accepted)]
    problems += [f"the provider accepted outbox row {r}, which says {dict((x[0], x[2]) for x in rows).get(r)}"
                 for r in sorted(accepted - sent - held) if r is not None]
    lookups = server.log.read_text(errors="replace").count("found at the provider as") if server.log else 0
    return TextsOutcome(counts, len(twilio.accepted), lookups, problems)


@dataclass
class Rig:
    server: ServeProcess
    tokens: dict[str, str]
    twilio: Any = None  # tests.fake_twilio.FakeTwilio when texts are on


@contextlib.asynccontextmanager
async def crash_rig(workdir: Path, *, texts: bool = False) -> AsyncIterator[Rig]:
    """A seeded clinic served by `waitroom serve`; with `texts`, its notifier sends to a fake Twilio."""
    db = workdir / "clinic.db"
    tokens = await seed(db)
    async with contextlib.AsyncExitStack() as stack:
        twilio = None
        env: dict[str, str] = {}
        if texts:
            from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

            twilio = await stack.enter_async_context(FakeTwilio())
            env = {"WAITROOM_SMS_PROVIDER": "twilio", "WAITROOM_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                   "WAITROOM_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "WAITROOM_TWILIO_FROM": CLINIC_NUMBER,
                   "WAITROOM_TWILIO_BASE_URL": twilio.base_url}
        server = ServeProcess(db, free_port(), TEXTS_START if texts else START, log=workdir / "serve.log", env=env)
        await server.start()
        try:
            yield Rig(server, tokens, twilio)
        finally:
            server.stop()


async def run(cycles: int, seed_value: int, workdir: Path, texts: bool) -> int:
    rng = random.Random(seed_value)
    results: list[CycleResult] = []
    outcome: TextsOutcome | None = None
    async with crash_rig(workdir, texts=texts) as rig:
        server = rig.server
        for c in range(cycles):
            res = await crash_cycle(server, rig.tokens, c, rng, twilio=rig.twilio)
            results.append(res)
            for p in res.problems:
                print(f"cycle {c}: {p}")
        if texts:
            # One clean restart past the lookup grace of rows the last kill left `sending`.
            server.stop()
            server.clock += timedelta(minutes=3)
            await server.start()
            outcome = await settle_texts(server, rig.twilio)
            for p in outcome.problems:
                print(f"texts: {p}")
    acked = sum(len(r.acked) for r in results)
    lost = sum(1 for r in results for p in r.problems if "missing" in p)
    restarts = [r.restart_s for r in results]
    print(f"cycles (SIGKILL + restart)        {cycles}")
    print(f"events sent                       {sum(r.sent for r in results)}")
    print(f"events acknowledged (2xx)         {acked}")
    print(f"acknowledged events lost          {lost}")
    print(f"other problems (4xx/5xx/state)    {sum(len(r.problems) for r in results) - lost}")
    print(f"in flight at the kill (no answer) {sum(r.errors for r in results)}")
    print(f"restart to healthy, median / max  {statistics.median(restarts):.2f} s / {max(restarts):.2f} s")
    if outcome is not None:
        print(f"texts: outbox rows by end state   {outcome.counts}")
        print(f"texts: accepted by the provider   {outcome.accepted}")
        twice = sum("times" in p for p in outcome.problems)
        print(f"texts: sent twice                 {twice}")
        print(f"texts: found at the provider after a kill (not resent) {outcome.settled_by_lookup}")
        print(f"texts: problems                   {len(outcome.problems)}")
    ok = all(not r.problems for r in results) and (outcome is None or not outcome.problems)
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cycles", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--texts", action="store_true", help="run the notifier against a fake Twilio and check the texts")
    args = p.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="waitroom-crash-") as d:
        return asyncio.run(run(args.cycles, args.seed, Path(d), args.texts))


if __name__ == "__main__":
    sys.exit(main())
