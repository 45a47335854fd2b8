"""The delay-text policy: who is texted, when, how often; pure code, no I/O."""

from __future__ import annotations

import ast
from dataclasses import replace
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from notifier.policy import (
    PolicyError,
    PolicySettings,
    SentText,
    TextCandidate,
    as_sent,
    decide,
    minutes_late,
)

TZ = ZoneInfo("America/Chicago")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=TZ)
S = PolicySettings()


def cand(late_min: float = 40, *, spread: float = 10, arrived: bool = True, sched_in: float = 30,
         **kw: object) -> TextCandidate:
    """A visit booked `sched_in` min from NOW whose median start is `late_min` past it."""
    scheduled = NOW + timedelta(minutes=sched_in)
    start = scheduled + timedelta(minutes=late_min)
    base = TextCandidate(
        visit_id="a1", kind="appointment", pet_name="Bella", pet_sex="female", vet_name="Dr. Ruiz",
        scheduled=scheduled, arrived=NOW - timedelta(minutes=5) if arrived else None,
        start=start, p10=start - timedelta(minutes=spread), p90=start + timedelta(minutes=spread),
        to_number="+15555550123", consent=True, tz=TZ, reason="emergency",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def sent_for(c: TextCandidate, at: datetime = NOW) -> SentText:
    return SentText(at=at, start=c.start, p10=c.p10, p90=c.p90)


def test_texts_a_waiting_client_likely_20_min_late() -> None:
    [d] = decide([cand(40)], NOW, S, {})
    assert d.kind == "delay" and d.seq == 1 and d.dedupe_key == "delay:a1:1"


def test_no_text_when_the_delay_is_small() -> None:
    assert decide([cand(8)], NOW, S, {}) == []


def test_threshold_reads_the_range_not_only_the_median() -> None:
    # Median 17 min late but a wide range: the likely start (between p10 and median) is
    # well under the trigger, so no text; the same median with a narrow range texts.
    assert decide([cand(17, spread=20, sched_in=0)], NOW, S, {}) == []
    assert len(decide([cand(17, spread=2, sched_in=0)], NOW, S, {})) == 1


def test_clinic_threshold_setting_moves_the_trigger() -> None:
    strict = PolicySettings(threshold_min=40)
    assert decide([cand(30, spread=2, sched_in=0)], NOW, strict, {}) == []
    assert len(decide([cand(45, spread=2, sched_in=0)], NOW, strict, {})) == 1


def test_further_ahead_a_delay_must_be_larger_to_text() -> None:
    assert len(decide([cand(25, spread=2, arrived=False, sched_in=5)], NOW, S, {})) == 1
    assert decide([cand(25, spread=2, arrived=False, sched_in=60)], NOW, S, {}) == []
    assert len(decide([cand(45, spread=2, arrived=False, sched_in=60)], NOW, S, {})) == 1


def test_not_yet_arrived_client_is_texted_within_the_horizon_only() -> None:
    assert len(decide([cand(40, arrived=False, sched_in=60)], NOW, S, {})) == 1
    far = cand(40, arrived=False, sched_in=S.horizon_min + 30)
    assert decide([far], NOW, S, {}) == []


def test_never_without_consent_or_after_opt_out_or_without_a_number() -> None:
    for c in (cand(60, consent=False), cand(60, opted_out=True), cand(60, to_number=None),
              cand(60, kind="emergency"), cand(60, to_number="+442079460000", textable=False)):
        assert decide([c], NOW, S, {}) == [], c


@pytest.mark.parametrize(("hour", "minute", "texts"), [(7, 59, 0), (8, 0, 1), (20, 59, 1), (21, 0, 0), (23, 0, 0)])
def test_quiet_hours_in_the_clients_local_time(hour: int, minute: int, texts: int) -> None:
    now = NOW.replace(hour=hour, minute=minute)
    c = cand(40)
    c = replace(c, scheduled=now, start=now + timedelta(minutes=40), p10=now + timedelta(minutes=30),
                p90=now + timedelta(minutes=50))
    assert len(decide([c], now, S, {})) == texts


def test_quiet_hours_follow_the_clients_zone_not_utc() -> None:
    # 13:30 UTC is 07:30 in Chicago: too early there.
    now = datetime(2026, 3, 2, 13, 30, tzinfo=ZoneInfo("UTC"))
    c = replace(cand(40), scheduled=now, start=now + timedelta(minutes=40), p10=now + timedelta(minutes=30),
                p90=now + timedelta(minutes=50))
    assert decide([c], now, S, {}) == []
    assert len(decide([replace(c, tz=ZoneInfo("Europe/Madrid"))], now, S, {})) == 1


def test_texting_hours_may_narrow_but_never_widen() -> None:
    PolicySettings(quiet_start=time(9, 0), quiet_end=time(18, 0))
    with pytest.raises(PolicyError):
        PolicySettings(quiet_start=time(7, 0))
    with pytest.raises(PolicyError):
        PolicySettings(quiet_end=time(22, 0))
    narrow = PolicySettings(quiet_start=time(9, 30))
    assert decide([cand(40)], NOW, narrow, {}) == []


def test_no_second_text_while_what_was_told_holds() -> None:
    c = cand(40)
    later = NOW + timedelta(minutes=10)
    # Still inside the range told: silence.
    moved = replace(c, start=c.start + timedelta(minutes=5))
    assert decide([moved], later, S, {"a1": [sent_for(c)]}) == []


def test_second_text_when_the_start_passes_the_range_told() -> None:
    c = cand(40)
    later = NOW + timedelta(minutes=10)
    def moved(past_top: float) -> TextCandidate:
        return replace(c, start=c.p90 + timedelta(minutes=past_top), p10=c.p90 - timedelta(minutes=5),
                       p90=c.p90 + timedelta(minutes=15))

    # Hysteresis: a median a few minutes past the top of the range told is not yet news.
    assert decide([moved(3)], later, S, {"a1": [sent_for(c)]}) == []
    [d] = decide([moved(8)], later, S, {"a1": [sent_for(c)]})
    assert d.kind == "later" and d.seq == 2 and d.dedupe_key == "delay:a1:2"


def test_not_yet_arrived_client_told_to_come_sooner_when_the_delay_shrinks() -> None:
    c = cand(45, arrived=False)
    better = replace(c, start=c.scheduled, p10=c.scheduled, p90=c.scheduled + timedelta(minutes=10))  # type: ignore[operator]
    [d] = decide([better], NOW + timedelta(minutes=5), S, {"a1": [sent_for(c)]})
    assert d.kind == "earlier"
    # A client already in the lobby needs no "come sooner" text.
    assert decide([replace(better, arrived=NOW)], NOW + timedelta(minutes=5), S, {"a1": [sent_for(c)]}) == []


def test_at_most_three_texts_per_visit_per_day() -> None:
    c = cand(40)
    sent = [sent_for(c, NOW - timedelta(minutes=30 - i)) for i in range(3)]
    far_worse = replace(c, start=c.start + timedelta(hours=1), p10=c.p10 + timedelta(hours=1),
                        p90=c.p90 + timedelta(hours=1))
    assert decide([far_worse], NOW, S, {"a1": sent}) == []
    with pytest.raises(PolicyError):
        PolicySettings(max_per_day=4)


def test_yesterdays_texts_do_not_count_against_today() -> None:
    c = cand(40)
    yesterday = [sent_for(c, NOW - timedelta(days=1)) for _ in range(3)]
    [d] = decide([c], NOW, S, {"a1": yesterday})
    assert d.seq == 4  # and a fresh dedupe key


def test_walkin_is_texted_when_the_range_shown_at_checkin_no_longer_holds() -> None:
    c = replace(cand(40), kind="walkin", scheduled=None)
    assert decide([c], NOW, S, {}) == []  # nothing told yet to break
    shown = replace(c, kiosk_p10=c.start - timedelta(minutes=40), kiosk_p90=c.start - timedelta(minutes=20))
    [d] = decide([shown], NOW, S, {})
    assert d.kind == "delay"


def test_one_decision_per_visit_and_keys_are_unique() -> None:
    cs = [replace(cand(40), visit_id=f"a{i}") for i in range(5)]
    ds = decide(cs, NOW, S, {})
    assert len({d.dedupe_key for d in ds}) == 5
    # Feeding the decisions back as sent: nothing more to say.
    assert decide(cs, NOW, S, {d.visit_id: [as_sent(d)] for d in ds}) == []


def test_range_told_is_in_whole_five_minutes_and_never_negative() -> None:
    assert minutes_late(cand(40, spread=7)) == (30, 50)
    assert minutes_late(cand(0, spread=10)) == (0, 10)


def test_policy_module_is_pure() -> None:
    src = Path(__file__).resolve().parent.parent / "notifier" / "policy.py"
    names = set()
    for node in ast.walk(ast.parse(src.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today", "time"):
            assert not (isinstance(node.value, ast.Name) and node.value.id in ("datetime", "date", "time")), \
                "the policy reads no clock"
    assert names <= {"__future__", "collections", "dataclasses", "datetime", "typing"}


def test_a_text_that_went_stale_unsent_did_not_tell_the_client() -> None:
    # The provider was down until the first text went stale: the client still knows nothing,
    # so the delay is owed afresh, as the next text in sequence (its own dedupe key).
    c = cand(40)
    stale = replace(sent_for(c, NOW - timedelta(minutes=35)), reached=False)
    [d] = decide([c], NOW, S, {"a1": [stale]})
    assert d.kind == "delay" and d.dedupe_key == "delay:a1:2"
    # One that went out did tell them: nothing new while its range holds.
    assert decide([c], NOW, S, {"a1": [sent_for(c, NOW - timedelta(minutes=35))]}) == []
