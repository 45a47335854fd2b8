"""Outages: the kiosk with the server unreachable, the notifier with its provider failing.

The same harness as `bench/bench_outage.py`, which prints the figures (latencies included).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.bench_outage import kiosk_outage, notifier_outage


async def test_kiosk_takes_100_checkins_through_an_outage_and_delivers_each_once_in_order(tmp_path: Path) -> None:
    """10 minutes of clinic time unreachable (refused, then a black hole), 100 walk-ins (every 20th
    tapped through all screens), then back with the first answers lost on the way; then, online
    again, a black hole out of the blue and 4 walk-ins tapped through it."""
    timeout = 3.0  # a tap that waited for the network would take this long
    res = await kiosk_outage(tmp_path, checkins=100, pilot_every=20, timeout_s=timeout, blackhole_again=4)
    assert res.made == 104 and res.made_again == 4 and res.by_pilot == 9
    assert res.recorded == 104, res
    assert res.doubled == 0, res
    assert res.out_of_order == 0, res
    # The kiosk never failed or froze: no error screen, every tapped walk-in during an outage
    # ended on the "saved" screen (and the ones after it on the live one), and all 100 of the
    # long outage waited in its queue meanwhile.
    assert res.failures == []
    assert res.offline_done_screens == 9
    assert res.queued_peak == 100
    # The answers lost on the way back really were lost (and resent under the same key).
    assert res.answers_lost >= 1
    # Once the kiosk knew it was offline, every client's request went straight into the queue,
    # never touching the network: the first of the outage tried (refused at once: that is how it
    # found out), none after it, through the black hole that followed; later, online, only the
    # walk-in that ran into the second black hole tried (waiting out the timeout).
    assert res.tried["down (send)"][0] and not any(res.tried["down (send)"][1:]), res.tried
    for phase in ("down", "blackhole", "blackhole (send)", "blackhole, known"):
        assert res.tried[phase] and not any(res.tried[phase]), (phase, res.tried)
    assert res.tried["blackhole, finding out"] == [True]
    assert min(res.done["blackhole, finding out"]) >= 0.9 * timeout, res.done
    # Taps keep answering while the network waits: the waits happen in workers, never in a tap's
    # handler. Not a ratio to the online taps (that flaked at a load of 12 on 2 cores): a tap
    # that waited on the network would take the whole timeout, which is long here.
    for phase in ("down", "blackhole", "blackhole, known"):
        assert statistics.median(res.taps[phase]) < timeout, (phase, res.taps)
    # (bench/bench_outage.py prints the latencies: those are figures, not assertions.)


async def test_texts_queued_during_a_provider_outage_go_out_once_when_it_recovers(tmp_path: Path) -> None:
    """The fake Twilio answers 500 / 429 / timeouts for 10 minutes (a clock at 120x), then the
    first creates after recovery are accepted but answered 500 or never: each text still
    reaches the provider exactly once, and none is left failed or held."""
    res = await notifier_outage(tmp_path, texts=20, outage_min=10, speed=120, timeout_s=0.2, limit_s=30)
    assert res.faults_served >= 20  # the outage was real: every text met it
    assert res.accepted_twice == 0, res
    assert res.never_accepted == 0, res
    assert res.accepted_once == 20, res
    assert res.counts["sent"] == 20, res.counts
