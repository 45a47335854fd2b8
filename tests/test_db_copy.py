"""`waitroom db copy` / `db check` (issue 13 item 4): a clinic moved off SQLite is checked by
replaying its event log from an empty state on both sides, and a copy that differs is refused
naming the first difference."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path

import asyncpg
import pytest

from server.demo import past_weekdays, play_past_day, seed_day
from server.events import Event, apply_event
from server.logreplay import first_difference, replay_log
from server.store import LoggedEvent, SqliteStore
from server.store.copy import CopyError, check_copy
from server.timeutil import tz_from
from tests.pg_cluster import with_params

EXE = str(Path(sys.executable).parent / "waitroom")
ZONE = "America/Chicago"
TODAY = date(2026, 3, 4)


async def _a_played_clinic(db: Path) -> None:
    """The demo clinic with two past days played through the real write path (check-ins, starts,
    ends, no-shows, an emergency, texts), and today's morning: a check-in, a move, a move up the
    line, a vet away, texts paused, a client in the car, and undone changes."""
    tz = tz_from(ZONE)
    played = past_weekdays(TODAY, 2)
    store = await SqliteStore.open(str(db))
    try:
        async with store.transaction() as tx:
            await seed_day(tx, TODAY, ZONE, history_days=5, once_a_day=True, history_before=played[0])
        for d in played:
            await play_past_day(store, d)
        async with store.read() as q:
            day = await q.visits_for_day(TODAY)
        by_vet: dict[str, list[str]] = {}
        for v in sorted(day.visits.values(), key=lambda v: (v.scheduled, v.id)):
            by_vet.setdefault(v.vet, []).append(v.id)
        (v1, line1), (v2, _) = list(by_vet.items())[:2]
        at = datetime.combine(TODAY, time(8, 30), tz)
        plan = [Event("checkin", at, line1[0]), Event("checkin", at, line1[1]), Event("checkin", at, line1[2]),
                Event("start", at + timedelta(minutes=5), line1[0]),
                Event("move", at, line1[3], {"vet": v2}),
                Event("reorder", at, line1[2], {"vet": v1, "direction": "up",
                                                "priorities": {line1[2]: 1.0, line1[1]: 2.0}}),
                Event("vet_late", at, None, {"vet": v2, "until": (at + timedelta(minutes=40)).isoformat(),
                                             "reason": "stuck in traffic"}),
                Event("pause_texts", at, None, {"client": None}),
                Event("in_car", at, line1[1]),
                Event("walkin", at, "walkin-1", {"vet": v1, "type": None, "booked_min": 15.0, "pet": "Rex"})]
        seqs = []
        for ev in plan:
            async with store.transaction() as tx:
                seqs.append(await apply_event(tx, ev, "user:ann", tz, ev.at))
        # Undo the walk-in and the pause (the latest change to each).
        for seq in (seqs[-1], seqs[-3]):
            async with store.transaction() as tx:
                await apply_event(tx, Event("undo", at, None, {"seq": seq}), "user:ann", tz, at)
    finally:
        await store.close()


async def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [EXE, "db", *args], capture_output=True, text=True)


async def test_replaying_the_log_from_empty_gives_back_what_the_clinic_stored(tmp_path: Path) -> None:
    db = tmp_path / "clinic.db"
    await _a_played_clinic(db)
    store = await SqliteStore.open(str(db))
    try:
        async with store.read() as q:
            out = await replay_log(q)
            assert len(out.log) > 300 and not out.refused
            # Every visit the log touched ends as the clinic stored it: status, times, vet, priority.
            for vid, (kind, status, vet, arrived, started, ended, priority) in out.visits.items():
                stored = await q.visit(vid)
                if stored is None:
                    assert vid == "walkin-1" and status == "cancelled"  # the undone walk-in: gone
                    continue
                v = stored.visit
                assert (kind, status, vet, arrived, started, ended, priority) == (
                    v.kind, stored.status, v.vet, v.arrived, v.started, v.ended, v.priority), vid
            assert sum(1 for v in out.visits.values() if v[1] == "done") > 50
            assert out.paused == (False, frozenset())  # paused, then undone
            assert len(out.in_car) == 1 and len(out.undone) == 2
            assert any(a is not None for a in out.away_until.values())
    finally:
        await store.close()


async def test_db_copy_replays_the_log_on_both_sides_and_db_check_names_a_tampered_event_or_row(
        tmp_path: Path, pg_url: str) -> None:
    db = tmp_path / "clinic.db"
    await _a_played_clinic(db)
    target = with_params(pg_url, clinic="riverside")
    out = await _run("copy", "--from", str(db), "--to", target)
    assert out.returncode == 0, out.stderr
    assert "replayed from empty to the same outcome" in out.stdout
    checked = await _run("check", "--from", str(db), "--to", target)
    assert checked.returncode == 0, checked.stderr
    assert "checked clinic 'riverside'" in checked.stdout

    conn = await asyncpg.connect(pg_url)  # its search_path: the test's schema
    try:
        # One event changed in the copy: the second played day's last consult ended 10 min later.
        seq, vid = await conn.fetchrow(
            "SELECT seq, appointment_id FROM events WHERE clinic_id = 'riverside' AND type = 'end' "
            "ORDER BY seq DESC LIMIT 1")
        await conn.execute("UPDATE events SET at = at + interval '10 minutes' WHERE seq = $1", seq)
        refused = await _run("check", "--from", str(db), "--to", target)
        assert refused.returncode == 2
        assert "replaying the event log" in refused.stderr and f"visit {vid!r}: ended" in refused.stderr
        assert "(end of" in refused.stderr, refused.stderr  # and the event that set it
        await conn.execute("UPDATE events SET at = at - interval '10 minutes' WHERE seq = $1", seq)

        # An undo pointed at another event: the replay undoes something else.
        undo, data = await conn.fetchrow("SELECT seq, data FROM events WHERE clinic_id = 'riverside' "
                                         "AND type = 'undo' ORDER BY seq LIMIT 1")
        await conn.execute("UPDATE events SET data = jsonb_set(data, '{seq}', to_jsonb(($2::jsonb->>'seq')::int - 1)) "
                           "WHERE seq = $1", undo, data)
        with pytest.raises(CopyError, match="replaying the event log on both sides"):
            await check_copy(str(db), target)
        await conn.execute("UPDATE events SET data = $2::jsonb WHERE seq = $1", undo, data)

        # One row changed, not the log: a visit's start in the copy.
        vid = await conn.fetchval("SELECT id FROM appointments WHERE clinic_id = 'riverside' AND started IS NOT NULL "
                                  "ORDER BY started DESC LIMIT 1")
        await conn.execute("UPDATE appointments SET started = started + interval '1 minute' "
                           "WHERE clinic_id = 'riverside' AND id = $1", vid)
        with pytest.raises(CopyError, match=f"visit {vid!r}: started"):
            await check_copy(str(db), target)
    finally:
        await conn.close()


async def test_first_difference_names_a_refused_event_and_a_visit(tmp_path: Path) -> None:
    """The comparison itself, on two SQLite files of the same clinic where one event differs."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    await _a_played_clinic(a)
    shutil.copyfile(a, b)
    store = await SqliteStore.open(str(b))
    try:
        e = [e for e in await _log(store) if e.type == "checkin"][-1]
        await store.conn.execute("UPDATE events SET type = 'end' WHERE seq = ?", (e.seq,))
    finally:
        await store.close()
    outs = []
    for path in (a, b):
        s = await SqliteStore.open(str(path))
        try:
            async with s.read() as q:
                outs.append(await replay_log(q))
        finally:
            await s.close()
    diff = first_difference(outs[0], outs[1], ("file", "copy"))
    assert diff is not None and f"(checkin of {e.appointment!r}" in diff, diff
    assert "accepted in the file, refused in the copy (end: the visit is" in diff, diff


async def _log(store: SqliteStore) -> list[LoggedEvent]:
    async with store.read() as q:
        return await q.events_since(0)
