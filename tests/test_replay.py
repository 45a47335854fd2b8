"""`waitroom replay` speaks the protocol: run as a process on a small day, as the scorer does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DAY = [
    {"type": "clinic", "tz_offset": "-05:00", "vets": [{"id": "v1", "name": "Dr. Ana Ruiz"},
                                                      {"id": "v2", "name": "Dr. Ben Okafor"}],
     "appointment_types": [{"id": "vacc", "name": "Vaccination", "booked_min": 15}]},
    {"type": "history", "days": [{"date": "2026-02-27", "visits": [
        {"id": "2026-02-27/a1", "kind": "appointment", "vet": "v1", "type": "vacc", "booked_min": 15,
         "scheduled": "2026-02-27T08:00:00-05:00", "arrived": "2026-02-27T07:58:00-05:00",
         "started": "2026-02-27T08:00:00-05:00", "ended": "2026-02-27T08:20:00-05:00", "pet": "Rex"},
        {"id": "2026-02-27/a2", "kind": "appointment", "vet": "v1", "type": "vacc", "booked_min": 15,
         "scheduled": "2026-02-27T08:15:00-05:00", "arrived": None, "started": None, "ended": None,
         "noshow_marked": "2026-02-27T08:30:00-05:00"}]}]},
    {"type": "schedule", "date": "2026-03-02", "appointments": [
        {"id": "a1", "vet": "v1", "type": "vacc", "booked_min": 15, "scheduled": "2026-03-02T08:00:00-05:00",
         "pet": "Bella"},
        {"id": "a2", "vet": "v1", "type": "vacc", "booked_min": 15, "scheduled": "2026-03-02T08:15:00-05:00",
         "pet": "Max"},
        {"id": "a3", "vet": "v2", "type": "vacc", "booked_min": 15, "scheduled": "2026-03-02T08:00:00-05:00",
         "pet": "Luna"}]},
    {"type": "query", "at": "2026-03-02T07:50:00-05:00", "id": "q1"},
    {"type": "checkin", "at": "2026-03-02T07:55:00-05:00", "appointment": "a1"},
    {"type": "emergency", "at": "2026-03-02T07:56:00-05:00", "id": "e1", "vet": "v1", "expected_min": 40},
    {"type": "walkin", "at": "2026-03-02T07:57:00-05:00",
     "appointment": {"id": "w1", "vet": "v2", "type": "sick", "booked_min": 20, "pet": "Coco"}},
    {"type": "query", "at": "2026-03-02T07:58:00-05:00", "id": "q2"},
    {"type": "emergency_start", "at": "2026-03-02T07:59:00-05:00", "id": "e1"},
    {"type": "start", "at": "2026-03-02T08:00:00-05:00", "appointment": "a3"},
    {"type": "noshow", "at": "2026-03-02T08:30:00-05:00", "appointment": "a2"},
    {"type": "query", "at": "2026-03-02T08:31:00-05:00", "id": "q3"},
]


def run_replay(lines: list[dict]) -> list[dict]:
    exe = Path(sys.executable).parent / "waitroom"
    proc = subprocess.run([str(exe), "replay"], input="".join(json.dumps(x) + "\n" for x in lines),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_replay_answers_each_query_with_every_pending_visit() -> None:
    answers = run_replay(DAY)
    assert [a["id"] for a in answers] == ["q1", "q2", "q3"]
    by_q = {a["id"]: {e["appointment"]: e for e in a["estimates"]} for a in answers}
    assert set(by_q["q1"]) == {"a1", "a2", "a3"}  # booked, not yet arrived: still owed an estimate
    assert set(by_q["q2"]) == {"a1", "a2", "a3", "w1"}  # the walk-in joins once checked in
    assert set(by_q["q3"]) == {"a1", "w1"}  # a3 started, a2 a no-show
    for answer in by_q.values():
        for e in answer.values():
            assert e["p10"] <= e["start"] <= e["p90"]
            assert e["start"].endswith("-05:00")


def test_replay_emergency_delays_its_vet_and_estimates_never_precede_now() -> None:
    answers = {a["id"]: {e["appointment"]: e for e in a["estimates"]} for a in run_replay(DAY)}
    # a1 was due at 08:00; Dr. Ruiz takes the 40-min emergency first.
    assert answers["q2"]["a1"]["start"] >= "2026-03-02T08:25"
    assert answers["q3"]["a1"]["start"] >= "2026-03-02T08:31"


def test_replay_goes_on_after_a_refused_event() -> None:
    lines = [*DAY[:3], {"type": "end", "at": "2026-03-02T08:00:00-05:00", "appointment": "a1"},
             {"type": "query", "at": "2026-03-02T08:01:00-05:00", "id": "q1"}]
    answers = run_replay(lines)
    assert answers[0]["id"] == "q1"
    assert {e["appointment"] for e in answers[0]["estimates"]} == {"a1", "a2", "a3"}


def test_replay_answers_carry_the_texts_the_real_outbox_took() -> None:
    appts = [{"id": f"b{i}", "vet": "v1", "type": "vacc", "booked_min": 15,
              "scheduled": f"2026-03-02T{9 + i // 4:02d}:{15 * (i % 4):02d}:00-05:00", "pet": f"Pet{i}"}
             for i in range(8)]
    lines = [DAY[0], DAY[1], {"type": "schedule", "date": "2026-03-02", "appointments": appts},
             {"type": "checkin", "at": "2026-03-02T08:55:00-05:00", "appointment": "b0"},
             {"type": "emergency", "at": "2026-03-02T08:58:00-05:00", "id": "e1", "vet": "v1", "expected_min": 90},
             {"type": "query", "at": "2026-03-02T09:00:00-05:00", "id": "q1"},
             {"type": "query", "at": "2026-03-02T09:10:00-05:00", "id": "q2"}]
    answers = run_replay(lines)
    texts = [t for a in answers for t in a["texts"]]
    told = {t["appointment"] for t in texts}
    assert "b0" in told  # waiting in the lobby, now 90 min behind
    assert told <= {a["id"] for a in appts}
    assert len(texts) == len(told)  # nothing said twice when nothing changed
    for t in texts:
        assert t["kind"] == "delay" and t["p10"] <= t["start"] <= t["p90"]
        assert t["start"] >= "2026-03-02T09:5"  # honest: after the 90-min emergency
