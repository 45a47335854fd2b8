"""A demo clinic: a day's schedule and simulated past days, for `waitroom demo` and the tests."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as dtime
from pathlib import Path
from typing import Any

from server.domain import Visit

VETS = [("v1", "Dr. Ana Ruiz"), ("v2", "Dr. Ben Okafor"), ("v3", "Dr. Chloe Martin")]
# Their titles in Spanish sentences ("con la Dra. Ana Ruiz"), as a PMS's vets[].title sends them.
VET_TITLES = {"v1": "Dra.", "v2": "Dr.", "v3": "Dra."}
# Each demo vet's true speed against booked lengths: what learning should find.
SPEED = {"v1": 1.0, "v2": 1.3, "v3": 0.85}
TYPES = [("vacc", "Vaccination", 15), ("wellness", "Wellness exam", 30), ("sick", "Sick pet", 20),
         ("recheck", "Recheck", 15), ("puppy", "New puppy / kitten", 30)]
CLIENTS = [
    # id, name, mobile, consent, language, notes, [(pet id, name, species, sex)]
    ("c1", "Maria Lopez", "312-555-0101", True, "es", "Prefers Spanish; Luna is nervous with men",
     [("p1", "Luna", "dog", "female")]),
    ("c2", "James Carter", "312-555-0102", True, "en", "", [("p2", "Max", "dog", "male"),
                                                           ("p3", "Bella", "cat", "female")]),
    ("c3", "Aiko Tanaka", "312-555-0103", False, "en", "", [("p4", "Mochi", "cat", "female")]),
    ("c4", "Samuel Green", "312-555-0104", True, "en", "Just lost his other dog in May",
     [("p5", "Rocky", "dog", "male")]),
    ("c5", "Fatima Hassan", "312-555-0105", True, "en", "", [("p6", "Simba", "cat", "male")]),
    ("c6", "Lucia Fernandez", "312-555-0106", True, "es", "", [("p7", "Coco", "dog", "female")]),
    ("c7", "Tom O'Brien", "312-555-0107", True, "en", "", [("p8", "Charlie", "dog", "male")]),
    ("c8", "Grace Kim", "312-555-0108", True, "en", "Brings her own treats", [("p9", "Daisy", "rabbit", "female")]),
    ("c9", "Noah Williams", "312-555-0109", False, "en", "", [("p10", "Teddy", "dog", "male")]),
    ("c10", "Emma Rossi", "312-555-0110", True, "en", "", [("p11", "Milo", "cat", "male")]),
    ("c11", "Diego Alvarez", "312-555-0111", True, "es", "", [("p12", "Nala", "dog", "female")]),
    ("c12", "Olivia Brown", "312-555-0112", True, "en", "", [("p13", "Oscar", "cat", "male")]),
]


FIRST = ["Liam", "Sofia", "Ethan", "Ava", "Mateo", "Chloe", "Omar", "Priya", "Hannah", "Lucas", "Zoe", "Daniel",
         "Mia", "Kofi", "Isabel", "Ryan", "Leah", "Carlos", "Nora", "Ben"]
LAST = ["Nguyen", "Garcia", "Smith", "Patel", "Johnson", "Moreno", "Davis", "Cohen", "Wilson", "Reyes", "Clark",
        "Singh", "Lewis", "Torres", "Walker", "Ali", "Young", "Ramos", "King", "Hill"]
PETS = ["Buddy", "Lola", "Cooper", "Pepper", "Ginger", "Toby", "Maple", "Bruno", "Olive", "Biscuit", "Zeus",
        "Willow", "Jasper", "Peanut", "Shadow", "Hazel", "Loki", "Ruby", "Otis", "Pumpkin", "Winston", "Cleo"]


def _more_clients(rng: random.Random, n: int) -> list[tuple[Any, ...]]:
    """Made-up clients beyond the named ones, so a demo household is booked once a day."""
    out = []
    for i in range(n):
        cid, k = f"g{i + 1}", len(CLIENTS) + i + 1
        sex = rng.choice(["female", "male"])
        out.append((cid, f"{rng.choice(FIRST)} {rng.choice(LAST)}", f"312-555-{100 + k:04d}", rng.random() < 0.85,
                    "es" if rng.random() < 0.2 else "en", "",
                    [(f"gp{i + 1}", rng.choice(PETS), rng.choice(["dog", "dog", "cat", "cat", "rabbit"]), sex)]))
    return out


def demo_schedule(day: date, tz: tzinfo, *, seed: int = 7, once_a_day: bool = False) -> dict[str, Any]:
    """The day's schedule as `POST /api/schedule` takes it: 3 vets, 08:00-17:00.

    The tests' day books the named pets over and over; `once_a_day` (the demo) adds made-up
    households so every pet is booked once, as in a real clinic day.
    """
    rng = random.Random(seed)
    extra = _more_clients(random.Random(seed + 1), 99 - len(CLIENTS)) if once_a_day else []
    clients = list(CLIENTS) + extra
    pets = [(pid, cid) for cid, *_rest, plist in CLIENTS for pid, *_ in plist]
    if once_a_day:
        # The named households (notes, Spanish speakers, a two-pet family) spread through the
        # day, one in five bookings, so the demo meets them after its 10:00 start too.
        named, made = iter(pets), iter([(pid, cid) for cid, *_rest, plist in extra for pid, *_ in plist])
        pets = [next(named, None) or next(made) if i % 5 == 4 else next(made) for i in range(len(extra))]
    appts = []
    n = 0
    for vet, _ in VETS:
        t = datetime.combine(day, dtime(8, 0), tz)
        end = datetime.combine(day, dtime(17, 0), tz)
        while t < end:
            type_id, _, booked = rng.choice(TYPES)
            pid, _ = pets[n % len(pets)]
            n += 1
            appts.append({"id": f"{day.isoformat()}-{vet}-{t:%H%M}", "vet": vet, "type": type_id, "pet": pid,
                          "scheduled": t.isoformat(), "booked_min": booked})
            t += timedelta(minutes=booked + rng.choice([0, 0, 5, 10]))
    return {
        "vets": [{"id": v, "name": name, "title": VET_TITLES[v]} for v, name in VETS],
        "appointment_types": [{"id": i, "name": name, "booked_min": b} for i, name, b in TYPES],
        "clients": [{"id": cid, "name": name, "mobile": mobile, "sms_consent": consent, "language": lang,
                     "notes": notes} for cid, name, mobile, consent, lang, notes, _ in clients],
        "pets": [{"id": pid, "client": cid, "name": pname, "species": species, "sex": sex}
                 for cid, *_rest, plist in clients for pid, pname, species, sex in plist],
        "appointments": appts,
    }


def demo_history(before: date, tz: tzinfo, days: int = 20, *, seed: int = 11) -> list[Visit]:
    """Simulated finished weekdays before `before`: per-vet speeds, lateness, no-shows, emergencies."""
    rng = random.Random(seed)
    out: list[Visit] = []
    d = before
    made = 0
    while made < days:
        d -= timedelta(days=1)
        if d.weekday() >= 5:
            continue
        made += 1
        for vet, _ in VETS:
            t = datetime.combine(d, dtime(8, 0), tz)
            free = t
            i = 0
            while t < datetime.combine(d, dtime(17, 0), tz):
                type_id, _, booked = rng.choice(TYPES)
                vid = f"{d.isoformat()}/{vet}/{i}"
                i += 1
                scheduled = t
                t += timedelta(minutes=booked)
                if rng.random() < 0.06:
                    out.append(Visit(vid, "appointment", vet, type_id, booked, scheduled=scheduled, noshow=True))
                    continue
                arrived = scheduled + timedelta(minutes=rng.gauss(-4, 6))
                start = max(free, arrived, scheduled - timedelta(minutes=5))
                length = booked * SPEED[vet] * rng.lognormvariate(0, 0.3)
                end = start + timedelta(minutes=length)
                free = end + timedelta(minutes=1)
                out.append(Visit(vid, "appointment", vet, type_id, booked, scheduled=scheduled, arrived=arrived,
                                 started=start, ended=end))
                if rng.random() < 0.015:
                    em_len = rng.uniform(30, 70)
                    em_start = free
                    free = em_start + timedelta(minutes=em_len)
                    out.append(Visit(f"{vid}/e", "emergency", vet, None, 45, arrived=em_start, started=em_start,
                                     ended=free, expected_min=45))
    return out


async def seed_day(tx: Any, day: date, zone: str, *, history_days: int = 20, once_a_day: bool = False,
                   token_prefix: str = "demo", history_before: date | None = None) -> dict[str, str]:
    """The demo clinic in `tx` (a store transaction): the clinic, `day`'s schedule, simulated past
    days to learn from, and an API token per role (returned). Shared by the demo, the tests
    and the benchmarks."""
    from server.schedule import import_schedule
    from server.store import ROLES, Clinic
    from server.texts import save_imported_vet_titles
    from server.timeutil import tz_from

    tz = tz_from(zone)
    now = datetime.now(UTC)
    await tx.set_clinic(Clinic("Riverside Animal Clinic", zone, "US", "+13125550100",
                               {"recovery_gesture": "today's exam fee waived"} if once_a_day else {}))
    doc = demo_schedule(day, tz, once_a_day=once_a_day)
    await import_schedule(tx, doc, tz, "US")
    await save_imported_vet_titles(tx, doc)
    await tx.add_history(demo_history(history_before or day, tz, days=history_days), tz)
    return {role: await tx.create_token(role, f"{token_prefix}-{role}", now) for role in ROLES}


def numbers_to_try(day: date, tz: tzinfo, after: datetime, n: int = 2) -> list[str]:
    """Named demo households with a booking still to come after `after` (the demo's clock
    starts mid-morning): the numbers the kiosk's demo line suggests, the two-pet family first."""
    sched = demo_schedule(day, tz, once_a_day=True)
    owner = {p["id"]: p["client"] for p in sched["pets"]}
    mobile = {c[0]: c[2] for c in CLIENTS}
    later = [(datetime.fromisoformat(a["scheduled"]), owner[a["pet"]]) for a in sched["appointments"]]
    booked = sorted({cid for t, cid in later if t >= after and cid in mobile},
                    key=lambda cid: (cid != "c2", min(t for t, c in later if c == cid and t >= after)))
    return [mobile[cid] for cid in booked[:n]]


def demo_guide(folder: Path, url: str, tokens: dict[str, str], numbers: list[str]) -> str:
    """Where everything of the running demo is, for a person trying it: printed at the start
    and kept in demo-data/README.txt (the kiosk takes the whole terminal at once)."""
    by_mobile = {c[2]: c for c in CLIENTS}
    households = "\n".join(
        f"  {m}   {by_mobile[m][1]}: {', '.join(p[1] for p in by_mobile[m][6])}"
        f"{', in Spanish' if by_mobile[m][4] == 'es' else ''}{'' if by_mobile[m][3] else ' (no texts: no consent)'}"
        for m in numbers)
    reply_to = numbers[0] if numbers else "312-555-0102"
    server = "" if url == "http://127.0.0.1:8080" else f" --server {url}"
    if folder.resolve() != (Path.cwd() / "demo-data").resolve():
        server += f" --tokens-file {folder / 'tokens.txt'}"
    return f"""waitroom demo: Riverside Animal Clinic, today, from 10:00 on the demo clock

Reception console  {url}/console
                   sign in as demo / demo-password
Lobby display      {url}/display?token={tokens['display']}
Reports            {url}/console/reports
API                curl -H 'Authorization: Bearer {tokens['reception']}' {url}/api/estimates
                   (every token is in {folder / 'tokens.txt'})

At the kiosk (this terminal), try these mobile numbers (booked later today):
{households}
  any other      "Walk-in" and "My pet needs urgent help" need no booking

Texts go to the server's log, not to phones (the console SMS provider):
  tail -f {folder / 'server.log'} | grep 'sms to'
Reply as a client would, by text ("1" keep my place, "2" reschedule, STOP), in {Path.cwd()}:
  {_here(Path(sys.executable).parent / "waitroom")} sms receive --from {reply_to} --body 1{server}

Stop the demo: Ctrl-Q in the kiosk (the server stops with it).
"""


def _here(path: Path) -> str:
    """`path` as typed from the current folder (.venv/bin/waitroom), else whole."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def run_demo(folder: Path, *, port: int = 8080, with_kiosk: bool = True) -> int:
    """Seed a demo clinic day and run the server (with its notifier and console) and the kiosk."""
    import asyncio

    from server.store import open_store
    from server.timeutil import tz_from
    from server.web.auth import create_user

    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    tzname = os.environ.get("WAITROOM_DEMO_TZ", "America/Chicago")
    tz = tz_from(tzname)
    today = datetime.now(tz).date()

    # The last few weekdays are played through the real event path (check-ins told their
    # range, emergencies texted), so the reports' accuracy and texts have numbers from the
    # first start; the weeks before them are finished visits to learn from.
    played = past_weekdays(today, PLAYED_DAYS)

    async def seed() -> dict[str, str]:
        store = await open_store(str(db))
        try:
            async with store.transaction() as conn:
                tokens = await seed_day(conn, today, tzname, once_a_day=True, history_days=20 - len(played),
                                        history_before=played[0])
                await create_user(conn, "demo", "demo-password", datetime.now(tz))
            for d in played:
                await play_past_day(store, d)
            return tokens
        finally:
            await store.close()

    print(f"seeding the demo clinic and playing its last {len(played)} days (about 10 s)...", flush=True)
    tokens = asyncio.run(seed())
    # The demo day runs from mid-morning, with the morning's visits already done or waiting.
    clock_start = datetime.combine(today, dtime(10, 0), tz)
    asyncio.run(_play_morning(db, today, clock_start))
    (folder / "tokens.txt").write_text("".join(f"{r}={t}\n" for r, t in tokens.items()))
    url = f"http://127.0.0.1:{port}"
    guide = demo_guide(folder, url, tokens, numbers_to_try(today, tz, clock_start, n=4))
    # The full-screen kiosk covers the terminal at once: the same words stay in a file.
    (folder / "README.txt").write_text(guide)
    print(guide + f"\n(this is also in {folder / 'README.txt'})", flush=True)
    # The demo's texts show their links whole, so they can be followed from the log.
    env = {**os.environ, "WAITROOM_PUBLIC_URL": url, "WAITROOM_CONSOLE_SMS_LINKS": "1"}
    # The server's logs and the console SMS provider's texts go to a file, not over the kiosk.
    log = open(folder / "server.log", "a")  # noqa: SIM115 - open for the server's whole life
    server = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--db", str(db), "--port", str(port),
                               "--clock", clock_start.isoformat()],
                              env=env, stdout=log, stderr=log)
    try:
        _wait_for(url)
        if with_kiosk:
            from kiosk.app import run_kiosk
            from kiosk.demo import DemoNote

            readme = folder / "README.txt"
            note = DemoNote(tuple(numbers_to_try(today, tz, clock_start)),
                            str(readme if readme.exists() else folder / "tokens.txt"))
            run_kiosk(server_url=url, token=tokens["kiosk"], queue_path=str(folder / "kiosk-queue.db"), demo=note)
        else:
            print("server running; Ctrl-C stops the demo", flush=True)
            server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
        log.close()
    return 0


PLAYED_DAYS = 3


def past_weekdays(before: date, n: int) -> list[date]:
    """The `n` weekdays just before `before`, oldest first."""
    out: list[date] = []
    d = before
    while len(out) < n:
        d -= timedelta(days=1)
        if d.weekday() < 5:
            out.insert(0, d)
    return out


async def play_past_day(store: Any, day: date, *, seed: int = 5) -> None:
    """One finished demo day played as it would have happened, through the real write path
    (`ClinicRuntime.post_event`: estimates at check-in kept as promises, delay texts decided),
    with an emergency for one vet; texts are "delivered" by an instant provider, as a worker
    would have sent them that day."""
    from notifier import outbox
    from server.events import Event
    from server.runtime import ClinicRuntime
    from server.schedule import import_schedule
    from server.texts import TextingOptions

    rng = random.Random(seed + day.toordinal())
    clinic = await store.clinic()
    tz = clinic.tz
    async with store.transaction() as tx:
        await import_schedule(tx, demo_schedule(day, tz, once_a_day=True), tz, clinic.region)
    async with store.read() as q:
        state = await q.visits_for_day(day)
    plan: list[Event] = []
    em_vet = rng.choice([v for v, _ in VETS])
    em_at = datetime.combine(day, dtime(rng.randint(10, 14), rng.choice([0, 15, 30, 45])), tz)
    for vet in state.vets:
        free = datetime.combine(day, dtime(8, 0), tz)
        queue = sorted((v for v in state.visits.values() if v.vet == vet and v.scheduled),
                       key=lambda v: v.scheduled or free)
        emergency = vet == em_vet
        for v in queue:
            assert v.scheduled is not None
            if rng.random() < 0.05:
                plan.append(Event("noshow", v.scheduled + timedelta(minutes=20), v.id))  # reception marks it
                continue
            arrive = v.scheduled + timedelta(minutes=rng.gauss(-4, 5))
            plan.append(Event("checkin", arrive, v.id))
            start = max(free, arrive, v.scheduled - timedelta(minutes=5))
            if emergency and start >= em_at:
                emergency = False
                eid = f"{day.isoformat()}-em-{vet}"
                length = timedelta(minutes=rng.uniform(35, 60))
                plan.append(Event("emergency", em_at, eid, {"vet": vet, "expected_min": 45.0}))
                e_start = max(em_at, free)
                plan.append(Event("emergency_start", e_start + timedelta(seconds=1), eid, {}))
                plan.append(Event("emergency_end", e_start + length, eid, {}))
                start = max(start, e_start + length + timedelta(minutes=1))
            plan.append(Event("start", start, v.id))
            end = start + timedelta(minutes=v.booked_min * SPEED[vet] * rng.lognormvariate(0, 0.25))
            plan.append(Event("end", end, v.id))
            free = end + timedelta(minutes=1)
    plan.sort(key=lambda e: e.at)
    texting = TextingOptions(public_url="http://127.0.0.1:8080", secret=b"demo-past-days")
    rt = await ClinicRuntime.start(store, day, texting=texting, estimate_granularity_s=0)
    for ev in plan:
        await rt.post_event(ev, "demo", ev.at)
        async with store.transaction() as tx:
            for row in await outbox.claim_due(tx, ev.at):
                sid = "SMdemo" + f"{row.id:026d}"
                await outbox.mark_sent(tx, row.id, sid, "queued", ev.at)
                await outbox.record_status(tx, row.id, sid, "delivered", None, ev.at + timedelta(seconds=4))


async def _play_morning(db: Path, today: date, until: datetime) -> None:
    """Post the morning's events through the real event path, as reception would have."""
    from server.events import Event, apply_event
    from server.store import open_store

    rng = random.Random(3)
    store = await open_store(str(db))
    try:
        clinic = await store.clinic()
        async with store.read() as q:
            state = await q.visits_for_day(today)
        async with store.transaction() as conn:
            for vet in state.vets:
                free = datetime.combine(today, dtime(8, 0), clinic.tz)
                queue = sorted((v for v in state.visits.values() if v.vet == vet and v.scheduled),
                               key=lambda v: v.scheduled or free)
                for v in queue:
                    assert v.scheduled is not None
                    arrive = v.scheduled + timedelta(minutes=rng.gauss(-4, 4))
                    if arrive >= until:
                        break
                    await apply_event(conn, Event("checkin", arrive, v.id), "demo", clinic.tz, arrive)
                    start = max(free, arrive, v.scheduled - timedelta(minutes=5))
                    if start >= until:
                        continue
                    await apply_event(conn, Event("start", start, v.id), "demo", clinic.tz, start)
                    end = start + timedelta(minutes=v.booked_min * SPEED[vet] * rng.lognormvariate(0, 0.25))
                    free = end + timedelta(minutes=1)
                    if end < until:
                        await apply_event(conn, Event("end", end, v.id), "demo", clinic.tz, end)
    finally:
        await store.close()


def _wait_for(url: str, timeout: float = 15.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
