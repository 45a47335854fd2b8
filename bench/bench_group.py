"""A group of 200 clinics on one PostgreSQL database (issue 13 item 6), served by 1, 2 and 4
group-mode `waitroom serve` processes on loopback; SQLite for one clinic in the same run; then
one of the processes killed with SIGKILL mid-run.

    .venv/bin/python bench/bench_group.py            # 200 clinics (make bench-group)
    .venv/bin/python bench/bench_group.py --quick    # 3 clinics, 1 and 2 processes: a smoke run

The clinics. Each is seeded from a day of ../shared/replay/public/ (its vets, types, 20 days of
history and the day's bookings, every booked client with a mobile and consent to texts), round
robin over the 28 days, every day moved to one Monday (the group's processes share one clock).
The days are seeded once through the store interface into a template schema, and the 200 clinics
copied from them in one statement per table. Clinic ids sort by their day ("c07-003": the 4th
clinic playing day 7), the order a process starts its clinics in: clinics of one day have the
same history, so a process learns 28 models, not 200 (`server.learning` keeps the last few).

The rounds. Group-mode processes (`--db 'postgresql://...?clinic=*'`: a request's bearer token
picks its clinic) serve all 200 clinics, their notifiers sending to the fake Twilio of
tests/fake_twilio.py (in this process, on loopback). Round 1 has one process; before rounds 2
and 3, processes are added (to 2, then 4) and each new one starts every clinic (learning its
model) before it takes requests, as a group scaling out would: starting a process is the
expensive part (minutes of CPU for 200 clinics), so processes are not started afresh per round.
The replay goes on from round to round: each clinic's day is posted from its opening, in order,
and a round takes it on from where the last one stopped (so the rounds see different hours of
the days). A round has two phases:

- time-compressed (`--seconds`): each clinic's events (POST /api/events, the pms token) at
  their own times at `--speed` x real time (one after the other: a poster that falls behind
  posts its next event as soon as the last is answered), and its lobby display polling GET
  /api/estimates every `--read-every` s: latency at a stated load;
- as fast as answered (`--full-seconds`): each clinic's next events, each as soon as the last
  is answered: what the processes can take (events/s), and the ratio to 1 process.

Every request goes to the next live process in turn, as a reverse proxy would, and to the next
one when a process does not answer. The servers' clocks run in real time from the day's
opening; the events carry their own times (the API takes any time within 24 hours of its clock).

The last round then runs a third phase, time-compressed again, and kills one process with
SIGKILL a quarter into it: afterwards 0 acknowledged events lost (every acknowledged seq of the
run is in the database), 0 texts accepted twice by the fake Twilio (by outbox row, and by number
and words), and the other processes answering. Exit status 1 if any of that fails.

SQLite for one clinic: the first day's clinic in a file, one `waitroom serve`, its day posted as
fast as it is answered with one display polling: one clinic's own capacity.

PostgreSQL: WAITROOM_TEST_DATABASE=postgresql://... or a throwaway cluster started and stopped
here (Debian's postgresql, as the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPLAY = HERE.parent.parent / "shared" / "replay"
sys.path[:0] = [str(HERE.parent), str(REPLAY)]

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
from score import events_for  # noqa: E402  (../shared/replay/score.py: the day as a stream of events)

from server.replay import history_visits  # noqa: E402
from server.schedule import import_schedule  # noqa: E402
from server.store import Clinic, SqliteStore, Tx  # noqa: E402
from server.store.postgres import PgStore, PgTx  # noqa: E402
from tests import pg_cluster  # noqa: E402
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio  # noqa: E402

EXE = str(Path(sys.executable).parent / "waitroom")
DAY = date(2026, 6, 1)  # a Monday, like every public replay day: each is moved here by whole weeks
OPENING = "08:00:00"
CLINIC_NUMBER = "+13125550100"
AREAS = (312, 773, 872, 630, 847, 708, 224, 331)  # mobiles: area x 555-0000..9999, unique in the group
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the clinics' days ------------------------------------------------------------------------------


def moved(day: dict[str, Any], to: date) -> dict[str, Any]:
    """The replay day (history too) moved by whole days so that it falls on `to`."""
    delta = to - date.fromisoformat(day["day"]["date"])

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        if isinstance(x, str) and _TIME.match(x):
            return (datetime.fromisoformat(x) + delta).isoformat()
        if isinstance(x, str) and _DATE.match(x):
            return (date.fromisoformat(x) + delta).isoformat()
        return x

    out: dict[str, Any] = walk(day)
    return out


def schedule_doc(day: dict[str, Any], first_mobile: int) -> dict[str, Any]:
    """The day's bookings as a practice system pushes them: a client with a mobile and consent
    to texts for each booked pet."""
    clients, pets, appts = [], [], []
    for i, v in enumerate(x for x in day["day"]["visits"] if x["kind"] == "appointment"):
        n = first_mobile + i
        clients.append({"id": f"cl-{v['id']}", "name": f"Client {v['id']}", "sms_consent": True,
                        "mobile": f"+1{AREAS[n // 10000 % len(AREAS)]}555{n % 10000:04d}"})
        pets.append({"id": f"pet-{v['id']}", "client": f"cl-{v['id']}", "name": v.get("pet") or "Pet"})
        appts.append({"id": v["id"], "vet": v["vet"], "type": v["type"], "booked_min": v["booked_min"],
                      "scheduled": v["scheduled"], "pet": f"pet-{v['id']}"})
    return {"vets": day["clinic"]["vets"], "appointment_types": day["clinic"]["appointment_types"],
            "clients": clients, "pets": pets, "appointments": appts}


async def seed_clinic(tx: Tx, day: dict[str, Any], first_mobile: int) -> None:
    """One clinic through the store interface: the clinic, the day's schedule, its history."""
    clinic = Clinic(f"Bench {day['name']}", day["clinic"]["tz_offset"], "US", CLINIC_NUMBER)
    await tx.set_clinic(clinic)
    await import_schedule(tx, schedule_doc(day, first_mobile), clinic.tz, clinic.region)
    await tx.add_history(history_visits(day["history"]), clinic.tz)


async def tokens_for(tx: Tx) -> dict[str, str]:
    now = datetime.now().astimezone()
    return {role: await tx.create_token(role, f"bench-{role}", now) for role in ("pms", "display")}


@dataclass
class ClinicRun:
    """One clinic of a round: its id, its (moved) day, its tokens."""

    id: str
    day: dict[str, Any]
    tokens: dict[str, str] = field(default_factory=dict)
    posted: int = 0  # events of its day posted so far: the replay goes on from there in the next round


class Group:
    """The PostgreSQL side: the 28 days seeded once into a template schema, copied per round."""

    def __init__(self, url: str, days: list[dict[str, Any]], stamp: str) -> None:
        self.url, self.days, self.stamp = url, days, stamp
        self.template = f"bench_{stamp}_days"
        self.schemas: list[str] = []

    def schema_url(self, schema: str, clinic: str) -> str:
        return pg_cluster.with_params(self.url, search_path=schema, clinic=clinic)

    async def _migrated_schema(self, schema: str) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
        finally:
            await conn.close()
        self.schemas.append(schema)
        store = await PgStore.open(self.schema_url(schema, "migrating"))  # creates the tables
        await store.close()
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(f"DELETE FROM {schema}.clinics WHERE id = 'migrating'")
        finally:
            await conn.close()

    async def seed_templates(self, used: int) -> None:
        """The first `used` days, each as a clinic of the template schema."""
        await self._migrated_schema(self.template)
        conn = await asyncpg.connect(pg_cluster.with_params(self.url, search_path=self.template))
        try:
            for i, day in enumerate(self.days[:used]):
                async with conn.transaction():
                    await seed_clinic(PgTx(conn, f"d{i:02d}", writable=True), day, 0)
        finally:
            await conn.close()

    async def round_clinics(self, k: int, n: int) -> tuple[str, list[ClinicRun]]:
        """`n` clinics (day i % 28) copied from the templates into a new schema, with tokens."""
        schema = f"bench_{self.stamp}_r{k}"
        await self._migrated_schema(schema)
        per_day = [0] * len(self.days)
        clinics: list[ClinicRun] = []
        mobiles: list[int] = []
        used = min(n, len(self.days))
        for i in range(n):
            d = i % used
            clinics.append(ClinicRun(f"c{d:02d}-{per_day[d]:03d}", self.days[d]))
            per_day[d] += 1
            mobiles.append(i * 200)
        pairs = ([f"d{i % used:02d}" for i in range(n)], [c.id for c in clinics], mobiles)
        conn = await asyncpg.connect(pg_cluster.with_params(self.url, search_path=schema))
        try:
            async with conn.transaction():
                # The clinic's tables (every one but the migrations' has clinic_id) that hold rows.
                tables = ["clinics"] + [r[0] for r in await conn.fetch(
                    "SELECT table_name FROM information_schema.columns WHERE table_schema = $1 "
                    "AND column_name = 'clinic_id'", self.template)]
                tables = [t for t in tables
                          if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {self.template}.{t})")]
                # Parents first: the clinic, then what names a vet, a type, a client, a pet.
                order = ["clinics", "vets", "appointment_types", "clients", "pets", "appointments"]
                for table in sorted(tables, key=lambda t: order.index(t) if t in order else len(order)):
                    await self._copy_table(conn, table, schema, pairs)
                for c in clinics:
                    c.tokens = await tokens_for(PgTx(conn, c.id, writable=True))
        finally:
            await conn.close()
        return schema, clinics

    async def _copy_table(self, conn: asyncpg.Connection, table: str, schema: str,
                          pairs: tuple[list[str], list[str], list[int]]) -> None:
        key = "id" if table == "clinics" else "clinic_id"
        cols = [r[0] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 "
            "AND is_identity = 'NO' AND is_generated = 'NEVER' ORDER BY ordinal_position", self.template, table)]
        rest = [c for c in cols if c != key]
        if table == "clients":  # a mobile of its own per clinic: the fake Twilio tells texts apart by number
            picked = [f"CASE WHEN t.mobile IS NULL THEN NULL ELSE '+1' || ((ARRAY{list(AREAS)})[1 + "
                      f"((m.mob + substr(t.mobile, 9)::int) / 10000) % {len(AREAS)}])::text || '555' || "
                      "lpad(((m.mob + substr(t.mobile, 9)::int) % 10000)::text, 4, '0') END" if c == "mobile"
                      else f"t.{c}" for c in rest]
        else:
            picked = [f"t.{c}" for c in rest]
        await conn.execute(
            f"INSERT INTO {schema}.{table} ({key}, {', '.join(rest)}) SELECT m.new, {', '.join(picked)} "
            f"FROM {self.template}.{table} t JOIN unnest($1::text[], $2::text[], $3::int[]) AS m(tpl, new, mob) "
            f"ON t.{key} = m.tpl", *pairs)

    async def drop(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            for schema in self.schemas:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()


# -- the servers ----------------------------------------------------------------------------------


@dataclass
class Servers:
    """The processes of a round and the proxy's view of them."""

    db: str
    env: dict[str, str]
    cwd: str
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    dead: set[int] = field(default_factory=set)
    turn: itertools.count[int] = field(default_factory=itertools.count)
    answered_by: dict[int, int] = field(default_factory=dict)  # port: answers, counted after a kill

    def next_port(self) -> int:
        live = [p for p in self.ports if p not in self.dead]
        if not live:
            raise RuntimeError("no process answers")
        return live[next(self.turn) % len(live)]

    async def start(self, n: int, clock: str) -> None:
        for _ in range(n):
            port = _port()
            log = open(os.path.join(self.cwd, f"serve-{port}.log"), "wb")  # noqa: ASYNC230, SIM115 - a log file for the server
            proc = await asyncio.create_subprocess_exec(
                EXE, "serve", "--db", self.db, "--host", "127.0.0.1", "--port", str(port), "--clock", clock,
                stdout=log, stderr=asyncio.subprocess.STDOUT, env=self.env, cwd=self.cwd)
            log.close()
            self.procs.append(proc)
            self.ports.append(port)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
            for port, proc in zip(self.ports, self.procs, strict=True):
                deadline = time.monotonic() + 180
                while True:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with s.get(f"http://127.0.0.1:{port}/api/health") as r:
                            if r.status == 200:
                                break
                    if proc.returncode is not None or time.monotonic() > deadline:
                        said = Path(self.cwd, f"serve-{port}.log").read_text(errors="replace")[-2000:]  # noqa: ASYNC240
                        raise RuntimeError(f"waitroom serve --db {self.db} did not come up:\n{said}")
                    await asyncio.sleep(0.2)

    def kill_one(self) -> int:
        victim = self.procs[0]
        victim.send_signal(signal.SIGKILL)
        self.dead.add(self.ports[0])
        return self.ports[0]

    async def stop(self) -> None:
        for p in self.procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 30)
            except TimeoutError:
                p.kill()
                await p.wait()
        self.procs, self.ports, self.dead = [], [], set()


# -- the load ---------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the load saw, each entry with the moment it happened (seconds into the round)."""

    t0: float = 0.0
    reads: list[tuple[float, float]] = field(default_factory=list)  # (when, seconds)
    writes: list[tuple[float, float]] = field(default_factory=list)
    lags: list[tuple[float, float]] = field(default_factory=list)  # how late each post went out against the replay
    acked: list[tuple[float, int]] = field(default_factory=list)  # (when, seq) of acknowledged events
    posted: list[tuple[float, str, datetime]] = field(default_factory=list)  # (when, clinic, the event's time)
    offered: list[float] = field(default_factory=list)  # when the replay scheduled each event
    errors: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)  # 4xx to an event (a retried post the killed process took)
    retried: int = 0
    killed_at: float | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0


async def _request(http: aiohttp.ClientSession, servers: Servers, method: str, path: str, token: str,
                   body: Any, tally: Tally) -> tuple[int, Any]:
    """One request to the next live process; to the next one when it does not answer (a
    killed process: connection refused or dropped), as a reverse proxy retries."""
    for _ in range(len(servers.ports)):
        port = servers.next_port()
        try:
            async with http.request(method, f"http://127.0.0.1:{port}{path}", json=body,
                                    headers={"Authorization": f"Bearer {token}"}) as r:
                answer = await r.json() if r.content_type == "application/json" else None
                if tally.killed_at is not None:
                    servers.answered_by[port] = servers.answered_by.get(port, 0) + 1
                return r.status, answer
        except aiohttp.ClientConnectionError:
            tally.retried += 1
            servers.dead.add(port)
        except TimeoutError:
            return 0, None  # slow, not gone: an error, not a retry
    raise RuntimeError("no process of the group answers")


def _events(clinic: ClinicRun) -> list[dict[str, Any]]:
    return [e for e in events_for(clinic.day) if e["type"] != "query"]


@dataclass
class Phase:
    """A stretch of a round: `seconds` long, the days replayed at `speed` x real time (None: each
    clinic's next event as soon as its last is answered); `kill_at`: SIGKILL one process then."""

    name: str
    seconds: float
    speed: float | None
    kill_at: float | None = None


async def poster(http: aiohttp.ClientSession, servers: Servers, clinic: ClinicRun, phases: list[Phase],
                 tally: Tally) -> None:
    """The clinic's day in order, phase after phase: in a time-compressed phase each event at its
    time (`speed` x real time from the first event the phase finds), else as fast as answered."""
    events = _events(clinic)
    i, start = clinic.posted, 0.0
    for ph in phases:
        end = start + ph.seconds
        anchor = events[i]["at"] if i < len(events) else None
        while i < len(events) and anchor is not None:
            e = events[i]
            due = start + (e["at"] - anchor).total_seconds() / ph.speed if ph.speed else tally.now()
            if due >= end:
                break
            if ph.speed:
                tally.offered.append(due)
            if due > tally.now():
                await asyncio.sleep(due - tally.now())
            if tally.now() >= end:
                break
            tally.lags.append((tally.now(), tally.now() - due))
            started = time.perf_counter()
            status, answer = await _request(http, servers, "POST", "/api/events", clinic.tokens["pms"],
                                             {**e, "at": e["at"].isoformat()}, tally)
            tally.writes.append((tally.now(), time.perf_counter() - started))
            tally.posted.append((tally.now(), clinic.id, e["at"]))
            if status == 201:
                tally.acked.append((tally.now(), int(answer["seq"])))
            elif 400 <= status < 500:
                tally.refused.append(tally.now())
            else:
                tally.errors.append(tally.now())
            i = clinic.posted = i + 1
        if tally.now() < end:
            await asyncio.sleep(end - tally.now())
        start = end


async def reader(http: aiohttp.ClientSession, servers: Servers, clinic: ClinicRun, seconds: float, every: float,
                 tally: Tally, offset: float) -> None:
    await asyncio.sleep(offset)
    while tally.now() < seconds:
        started = time.perf_counter()
        status, _ = await _request(http, servers, "GET", "/api/estimates", clinic.tokens["display"], None, tally)
        tally.reads.append((tally.now(), time.perf_counter() - started))
        if status != 200:
            tally.errors.append(tally.now())
        if every:
            await asyncio.sleep(max(0.0, every - (time.perf_counter() - started)))


async def warm_up(servers: Servers, clinics: list[ClinicRun], ports: list[int]) -> float:
    """Each new process starts every clinic (learning its model) before it takes load: one read
    per clinic and process, in the order the process starts them."""
    t0 = time.monotonic()
    # A process starting 200 clinics on a loaded machine can take minutes before it answers.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1200)) as http:
        async def one(port: int) -> None:
            for c in sorted(clinics, key=lambda c: c.id):
                async with http.get(f"http://127.0.0.1:{port}/api/estimates",
                                    headers={"Authorization": f"Bearer {c.tokens['display']}"}) as r:
                    if r.status != 200:
                        raise RuntimeError(f"clinic {c.id} at port {port}: {r.status} {await r.text()}")
        await asyncio.gather(*(one(p) for p in ports))
    return time.monotonic() - t0


def cpu_seconds(proc: asyncio.subprocess.Process) -> float:
    """The process's CPU time so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_load(servers: Servers, clinics: list[ClinicRun], phases: list[Phase], read_every: float,
                   readers: int) -> Tally:
    """The phases one after the other, the posters going on from where they are."""
    tally = Tally(time.monotonic())
    seconds = sum(ph.seconds for ph in phases)
    connector = aiohttp.TCPConnector(limit=0)  # a proxy's connections are not the bottleneck here
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        tasks = [poster(http, servers, c, phases, tally) for c in clinics]
        tasks += [reader(http, servers, c, seconds, read_every, tally, read_every * i / max(1, len(clinics)))
                  for i, c in enumerate(clinics) for _ in range(readers)]
        start = 0.0
        for ph in phases:
            if ph.kill_at is not None:
                async def kill(at: float) -> None:
                    await asyncio.sleep(at)
                    port = servers.kill_one()
                    tally.killed_at = tally.now()
                    print(f"  killed the process on port {port} with SIGKILL, {tally.killed_at:.0f} s into the round",
                          flush=True)
                tasks.append(kill(start + ph.kill_at))
            start += ph.seconds
        await asyncio.gather(*tasks)
    return tally


def _p(xs: list[float], q: int) -> float:
    return statistics.quantiles(xs, n=100)[q - 1] * 1000 if len(xs) >= 2 else float("nan")


def report(label: str, tally: Tally, start: float, end: float, speed: float | None, base: float | None) -> float:
    """The figures of the window [start, end) seconds into the round; events/s returned."""
    def inside(xs: list[tuple[float, float]]) -> list[float]:
        return [v for t, v in xs if start <= t < end]

    took = end - start
    rate = sum(1 for t, _ in tally.acked if start <= t < end) / took
    writes, reads = inside(tally.writes), inside(tally.reads)
    ratio = f" ({rate / base:.2f}x 1 process)" if base else ""
    if speed:
        lags = inside(tally.lags)
        load = (f"days at {speed:g}x real time, {sum(1 for t in tally.offered if start <= t < end) / took:.1f} "
                f"events/s offered, posts behind the replay p50 {_p(lags, 50) / 1000:.1f} / p99 "
                f"{_p(lags, 99) / 1000:.1f} s")
    else:
        # How much of its day each clinic got through: day-time of its events posted / wall time.
        spans: dict[str, list[datetime]] = {}
        for t, cid, at in tally.posted:
            if start <= t < end:
                spans.setdefault(cid, []).append(at)
        paces = sorted((max(v) - min(v)).total_seconds() / took for v in spans.values() if len(v) > 1)
        pace = f", each clinic's day at a median {statistics.median(paces):.0f}x real time" if paces else ""
        load = f"as fast as answered{pace}"
    errors = sum(1 for t in tally.errors if start <= t < end)
    refused = sum(1 for t in tally.refused if start <= t < end)
    print(f"{label}: {rate:.1f} events/s{ratio} ({load}); writes p50 {_p(writes, 50):.0f} / p99 "
          f"{_p(writes, 99):.0f} ms; reads p50 {_p(reads, 50):.0f} / p99 {_p(reads, 99):.0f} ms "
          f"({len(writes)} writes, {len(reads)} reads); errors {errors}, refused {refused}", flush=True)
    return rate


# -- after the kill ---------------------------------------------------------------------------------


async def lost_events(url: str, schema: str, acked: list[int]) -> int:
    conn = await asyncpg.connect(url)
    try:
        have = await conn.fetchval(f"SELECT COUNT(*) FROM {schema}.events WHERE seq = ANY($1::bigint[])", acked)
    finally:
        await conn.close()
    return len(set(acked)) - int(have)


async def settle_texts(url: str, schema: str, timeout: float) -> dict[str, int]:
    """Wait (bounded) until no text is being sent; the outbox's rows by status."""
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            counts = {r[0]: int(r[1]) for r in await conn.fetch(
                f"SELECT status, COUNT(*) FROM {schema}.outbox GROUP BY status")}
            if not counts.get("sending") or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def texts_twice(twilio: FakeTwilio, first: int) -> tuple[int, int]:
    """(outbox rows accepted more than once, (number, words) accepted more than once) since `first`."""
    msgs = twilio.accepted[first:]
    rows = [str(m.get("status_callback") or "").partition("row=")[2] for m in msgs]
    rows = [r for r in rows if r]
    pairs = [(m["to"], m["body"]) for m in msgs]
    return len(rows) - len(set(rows)), len(pairs) - len(set(pairs))


# -- the run --------------------------------------------------------------------------------------


async def sqlite_round(folder: str, day: dict[str, Any], seconds: float, read_every: float,
                       env: dict[str, str]) -> None:
    db = os.path.join(folder, "one.db")
    store = await SqliteStore.open(db)
    try:
        async with store.transaction() as tx:
            await seed_clinic(tx, day, 0)
            tokens = await tokens_for(tx)
    finally:
        await store.close()
    clinic = ClinicRun("sqlite", day, tokens)
    servers = Servers(db, env, folder)
    await servers.start(1, f"{DAY.isoformat()}T{OPENING}{day['clinic']['tz_offset']}")
    try:
        await warm_up(servers, [clinic], servers.ports)
        tally = await run_load(servers, [clinic], [Phase("full", seconds, None)], read_every, 1)
        # Over the time it posted: a clinic that posts its whole day early does not dilute the rate.
        end = min(seconds, max(t for t, _ in tally.writes)) if clinic.posted == len(_events(clinic)) else seconds
        whole = ", its whole day" if end < seconds else ""
        report(f"SQLite, 1 clinic, 1 process{whole}", tally, 0, end + 1e-6, None, None)
    finally:
        await servers.stop()


async def main(args: argparse.Namespace) -> int:
    paths = sorted((REPLAY / "public").glob("*.json"))
    days = [moved(json.loads(p.read_text()), DAY) for p in paths]
    rounds = [int(x) for x in args.procs.split(",")]
    if rounds != sorted(rounds) or rounds[0] < 1:
        raise SystemExit("--procs: a growing list of process counts (processes are added between rounds)")
    folder = tempfile.mkdtemp(prefix="bench-group-")
    cluster = None
    url = os.environ.get("WAITROOM_TEST_DATABASE")
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    if not url:
        cluster = pg_cluster.start_cluster()
        url = cluster.url
    group = Group(url, days, f"{int(time.time())}_{os.getpid()}")
    problems = 0
    try:
        async with FakeTwilio() as twilio:
            env = {**os.environ, "WAITROOM_SECRET": "bench-secret", "WAITROOM_PUBLIC_URL": "http://bench.example",
                   "WAITROOM_SMS_PROVIDER": "twilio", "WAITROOM_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                   "WAITROOM_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "WAITROOM_TWILIO_FROM": CLINIC_NUMBER,
                   "WAITROOM_TWILIO_BASE_URL": twilio.base_url}
            if args.sqlite_seconds:
                await sqlite_round(folder, days[0], args.sqlite_seconds, args.read_every, env)
            texts_before = len(twilio.accepted)
            t0 = time.perf_counter()
            used = min(args.clinics, len(days))
            await group.seed_templates(used)
            print(f"seeded {used} replay days into a template schema in {time.perf_counter() - t0:.1f} s", flush=True)
            clock = f"{DAY.isoformat()}T{OPENING}{days[0]['clinic']['tz_offset']}"
            t0 = time.perf_counter()
            schema, clinics = await group.round_clinics(0, args.clinics)
            print(f"{args.clinics} clinics copied from them in {time.perf_counter() - t0:.1f} s", flush=True)
            servers = Servers(group.schema_url(schema, "*"), env, folder)
            bases: tuple[float | None, float | None] = (None, None)
            acked: list[int] = []
            try:
                for k, procs in enumerate(rounds):
                    last = k == len(rounds) - 1 and procs >= 2 and not args.no_kill
                    old = len(servers.ports)
                    t0 = time.perf_counter()
                    await servers.start(procs - old, clock)
                    up = time.perf_counter() - t0
                    ready = await warm_up(servers, clinics, servers.ports[old:])
                    cpu = [cpu_seconds(p) for p in servers.procs[old:]]
                    # What the processes cost with no request at all (each clinic's notifier worker
                    # and periodic tick run in every process).
                    before = [cpu_seconds(p) for p in servers.procs]
                    await asyncio.sleep(args.idle_seconds)
                    idle = [(cpu_seconds(p) - b) / args.idle_seconds
                            for p, b in zip(servers.procs, before, strict=True)]
                    more = f"{procs - old} more process{'es' if procs - old > 1 else ''}"
                    print(f"round {k + 1}: {more} up in {up:.1f} s, every clinic started in each in {ready:.1f} s "
                          f"more (CPU "
                          f"{', '.join(f'{c:.0f}' for c in cpu)} s); idle, the {procs} use "
                          f"{', '.join(f'{c:.0%}' for c in idle)} of a core", flush=True)
                    phases = [Phase("replay", args.seconds, args.speed), Phase("full", args.full_seconds, None)]
                    if last:
                        phases.append(Phase("kill", args.seconds, args.speed, kill_at=args.seconds / 4))
                    tally = await run_load(servers, clinics, phases, args.read_every, 1)
                    acked += [seq for _, seq in tally.acked]
                    label = f"PostgreSQL, {args.clinics} clinics, {procs} process{'es' if procs > 1 else ''}"
                    T, F = args.seconds, args.full_seconds
                    paced = report(label, tally, 0, T, args.speed, bases[0])
                    full = report(" " * len(label), tally, T, T + F, None, bases[1])
                    if not bases[1]:
                        bases = (paced, full)
                    problems += sum(1 for t in tally.errors if t < T + F)
                    if last:
                        killed = T + F + args.seconds / 4
                        report(f"  after one of the {procs} processes was killed", tally, killed, T + F + T,
                               args.speed, None)
                        counts = await settle_texts(url, schema, timeout=45)
                        lost = await lost_events(url, schema, acked)
                        rows_twice, pairs_twice = texts_twice(twilio, texts_before)
                        alive = {p: n for p, n in servers.answered_by.items() if p not in servers.dead}
                        late_errors = sum(1 for t in tally.errors if t >= T + F)
                        print(f"  after the kill: {lost} of {len(acked)} acknowledged events lost; texts: "
                              f"{len(twilio.accepted) - texts_before} accepted by the fake Twilio, {rows_twice} outbox "
                              f"rows twice, {pairs_twice} (number, words) twice, outbox rows by status {counts}; "
                              f"{tally.retried} requests retried on another process, {late_errors} errors; the "
                              f"{len(alive)} other processes answered {sum(alive.values())} requests after it",
                              flush=True)
                        problems += lost + rows_twice + pairs_twice + late_errors + (0 if alive else 1)
            finally:
                await servers.stop()
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    finally:
        with contextlib.suppress(Exception):
            await group.drop()
        shutil.rmtree(folder, ignore_errors=True)
        if cluster is not None:
            cluster.stop()
    return 1 if problems else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clinics", type=int, default=200)
    p.add_argument("--procs", default="1,2,4", help="group-mode processes, one round each (the last one is killed)")
    p.add_argument("--seconds", type=float, default=30.0, help="each round's time-compressed replay (wall seconds)")
    p.add_argument("--speed", type=float, default=10.0, help="the replay: each clinic's day at this many x real time")
    p.add_argument("--full-seconds", type=float, default=15.0,
                   help="then each clinic's next events as fast as they are answered, this long")
    p.add_argument("--read-every", type=float, default=10.0, help="each clinic's display polls this often (s)")
    p.add_argument("--sqlite-seconds", type=float, default=20.0, help="the SQLite round (0: none)")
    p.add_argument("--no-kill", action="store_true", help="no kill in the last round")
    p.add_argument("--idle-seconds", type=float, default=5.0, help="how long the processes' idle cost is measured")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 3 clinics, 1 and 2 processes, short phases (other options still apply)")
    given = {a.split("=")[0] for a in (sys.argv[1:] if argv is None else argv)}
    args = p.parse_args(argv)
    if args.quick:
        quick = {"--clinics": ("clinics", 3), "--idle-seconds": ("idle_seconds", 1.0),
                 "--procs": ("procs", "1,2"), "--seconds": ("seconds", 6.0),
                 "--full-seconds": ("full_seconds", 3.0), "--sqlite-seconds": ("sqlite_seconds", 3.0),
                 "--speed": ("speed", 300.0)}
        for flag, (name, value) in quick.items():
            if flag not in given:
                setattr(args, name, value)
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
