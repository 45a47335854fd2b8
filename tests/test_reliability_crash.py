"""Crash safety: `waitroom serve` killed with SIGKILL mid-burst loses no acknowledged event,
sends no text twice and drops none.

The same harness as `bench/bench_crash.py` (which runs 50+ cycles and prints figures).
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest

from bench.bench_crash import crash_cycle, crash_rig, settle_texts

# The harness kills `waitroom serve` on its SQLite file and reads the file back; on PostgreSQL a
# server killed mid-send is tests/test_postgres_processes.py's.
pytestmark = pytest.mark.sqlite_only("the SQLite file's durability when serve is SIGKILLed (PostgreSQL's: "
                                     "test_postgres_processes)")


async def test_every_acknowledged_event_survives_sigkill_and_restart(tmp_path: Path) -> None:
    rng = random.Random(7)
    acked = 0
    async with crash_rig(tmp_path) as rig:
        for cycle in range(4):
            res = await crash_cycle(rig.server, rig.tokens, cycle, rng, kill_after_acked=(10, 20))
            assert res.problems == [], res.problems
            acked += len(res.acked)
            # The kill really landed mid-burst: some requests were cut off without an answer.
            assert res.errors > 0
    # The burst did real work each time (a server that answered nothing would pass vacuously).
    assert acked >= 40


async def test_texts_survive_sigkill_sent_once_and_none_dropped(tmp_path: Path) -> None:
    """The notifier runs inside `serve` against a fake Twilio; emergencies in the bursts
    push clients behind, so delay texts are being sent when the kill lands."""
    rng = random.Random(11)
    acked = 0
    async with crash_rig(tmp_path, texts=True) as rig:
        assert rig.twilio is not None
        for cycle in range(5):
            res = await crash_cycle(rig.server, rig.tokens, cycle, rng, kill_after_acked=(10, 20),
                                    twilio=rig.twilio)
            assert res.problems == [], res.problems  # events kept; no row or text accepted twice
            acked += len(res.acked)
        rig.server.stop()
        rig.server.clock += timedelta(minutes=3)  # past the lookup grace for rows the last kill left sending
        await rig.server.start()
        outcome = await settle_texts(rig.server, rig.twilio)
    assert outcome.problems == [], outcome.problems
    # Texts really went out during the bursts (a notifier that sent nothing would pass vacuously).
    assert outcome.accepted >= 5, outcome
    assert outcome.counts.get("sent", 0) + outcome.counts.get("delivered", 0) >= 5, outcome
    assert acked >= 40
