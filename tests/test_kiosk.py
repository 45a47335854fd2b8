"""The lobby kiosk, driven by clicking its real widgets, against the real server on loopback."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from bench.bench_outage import Network
from kiosk.api import JSON, HttpClinicClient, Kind
from kiosk.app import SIZE, KioskApp, make_kiosk
from kiosk.offline import Submitted
from kiosk.screens.consent import ConsentScreen
from kiosk.screens.done import DoneScreen
from kiosk.screens.notfound import NotFoundScreen
from kiosk.screens.pets import PetsScreen
from kiosk.screens.phone import PhoneScreen
from kiosk.screens.timeout import MoreTime
from kiosk.screens.urgent_done import UrgentDoneScreen
from kiosk.screens.walkin import WalkinScreen
from kiosk.screens.welcome import WelcomeScreen
from kiosk.widgets.qrcode import QRCode
from tests import dbq
from tests.conftest import LiveServer

HOUSEHOLD = "3125550102"  # pet-0 Bella (female) 08:00 Dr. Chloe Martin, pet-1 Max (male) 08:20 Dr. Ana Ruiz
LUNA = "3125550101"  # Luna (female): 08:00 Dr. Ana Ruiz ... 12:30 Dr. Chloe Martin (pet-2)
NOBODY = "3125550199"


def kiosk(server: LiveServer, tmp_path: Path, **kw: Any) -> KioskApp:
    kw = {"poll_s": 0.2, "retry_s": 0.2, **kw}
    return make_kiosk(server.base_url, server.tokens["kiosk"], tmp_path / "queue.db", **kw)


async def wait_for(pilot: Pilot[None], screen: type, seconds: float = 15) -> None:
    """Until `screen` shows. Bounded by time, not by a count of pauses: on a loaded 2-core
    machine a lookup (at least 50 ms by design) can take a second or two to come back."""
    deadline = time.monotonic() + seconds
    while not isinstance(pilot.app.screen, screen):
        if time.monotonic() > deadline:
            shown = [str(w.render()) for w in pilot.app.screen.query(Static) if w.id == "message"]
            shown += [str(w.value) for w in pilot.app.screen.query("#number") if hasattr(w, "value")]
            raise AssertionError(f"still on {type(pilot.app.screen).__name__} ({shown!r}), wanted {screen.__name__}")
        await pilot.pause(0.02)
    await pilot.pause()


async def tap(pilot: Pilot[None], selector: str, seconds: float = 15) -> None:
    """Click `selector` once it is laid out where a finger would find it. Right after a screen
    change, a loaded machine may not have placed the new widgets yet: a click then lands on
    whatever is at that spot (seen: the first keypad digit lost), so wait for the spot first."""
    deadline = time.monotonic() + seconds
    while True:
        found = pilot.app.screen.query(selector)
        if found:
            widget = found.first()
            try:
                there, _ = pilot.app.get_widget_at(*widget.region.offset)
            except Exception:  # nothing at that spot yet (NoWidget): not laid out
                there = None
            if widget.region.area and there is widget:
                # And still there once what is queued has run: a layout change already on its
                # way (the clinic's name arriving in the top bar of a small screen, a message
                # line) would move it between this look and the tap (seen at load 10-13: a
                # keypad digit's tap "landed elsewhere").
                region = widget.region
                await pilot.pause()
                try:
                    there, _ = pilot.app.get_widget_at(*widget.region.offset)
                except Exception:
                    there = None
                if widget.region == region and there is widget:
                    break
        assert time.monotonic() < deadline, f"{selector} not on {type(pilot.app.screen).__name__} within {seconds} s"
        await pilot.pause(0.02)
    assert await pilot.click(widget), f"the tap on {selector} landed elsewhere"


async def to_consent(pilot: Pilot[None], phone: str) -> None:
    """A client with a booking: look up `phone`, pick the first pet, reach the consent screen."""
    await tap(pilot, "#appointment")
    await type_phone(pilot, phone)
    await wait_for(pilot, PetsScreen)
    await tap(pilot, "#pet-0")
    await tap(pilot, "#continue")
    await wait_for(pilot, ConsentScreen)


async def type_phone(pilot: Pilot[None], digits: str) -> None:
    for d in digits:
        await tap(pilot, f"#key-{d}")
    await tap(pilot, "#key-ok")


async def until(pilot: Pilot[None], ok: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < deadline, f"not within {seconds} s (on {type(pilot.app.screen).__name__})"
        await pilot.pause(0.02)
    await pilot.pause()  # and laid out, ready for the next tap


def text(pilot: Pilot[None], selector: str = "#message") -> str:
    return str(pilot.app.screen.query_one(selector, Static).render())


def events(server: LiveServer, kind: str) -> list[tuple[Any, ...]]:
    return dbq.rows_now(server.db, "SELECT appointment_id, actor FROM events WHERE type = ? ORDER BY seq", kind)


@pytest.fixture
async def app(live_server: LiveServer, tmp_path: Path) -> AsyncIterator[KioskApp]:
    yield kiosk(live_server, tmp_path)


async def test_household_checks_in_two_pets_and_sees_live_estimate(app: KioskApp, live_server: LiveServer) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await tap(pilot, "#appointment")
        await type_phone(pilot, HOUSEHOLD)
        await wait_for(pilot, PetsScreen)
        labels = [str(b.label) for b in pilot.app.screen.query(".pet").results()]  # type: ignore[attr-defined]
        assert labels[1].startswith("☐  Max") and "8:20 AM" in labels[1] and "Dr. Ana Ruiz" in labels[1]
        assert all("312" not in label for label in labels)  # pet names, times and vets only
        await tap(pilot, "#pet-0")
        await tap(pilot, "#pet-1")
        await tap(pilot, "#continue")
        await wait_for(pilot, ConsentScreen)
        assert str(pilot.app.screen.query_one("#consent").label).startswith("☑")  # type: ignore[attr-defined]
        await tap(pilot, "#check-in")
        await wait_for(pilot, DoneScreen)
        msg = text(pilot)
        assert msg.startswith("Thank you. Bella is checked in with Dr. Chloe Martin. Your wait: about "), msg
        assert "We'll call his name" in msg and "Max is checked in with Dr. Ana Ruiz" in msg
        assert "We'll call her name" in msg
        assert "We'll text you if that changes." in msg
        assert len(pilot.app.screen.query(QRCode)) == 2
        assert [a for a, _ in events(live_server, "checkin")] == ["2026-03-02-v3-0800", "2026-03-02-v1-0820"]
        # The estimate updates while the screen is shown: an hour later the wait has changed.
        before = msg
        live_server.clock.advance(minutes=20)
        await until(pilot, lambda: text(pilot) != before)


async def test_typo_number_gets_a_friendly_message(app: KioskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await tap(pilot, "#appointment")
        await type_phone(pilot, "31255")
        assert isinstance(pilot.app.screen, PhoneScreen)
        assert "doesn't look quite right" in text(pilot)
        await tap(pilot, "#key-back")
        assert pilot.app.screen.query_one("#keypad").value == "3125"  # type: ignore[attr-defined]


async def test_unknown_number_is_sent_to_the_front_desk_and_reception_is_told(
        app: KioskApp, live_server: LiveServer) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await tap(pilot, "#appointment")
        await type_phone(pilot, NOBODY)
        await wait_for(pilot, NotFoundScreen)
        assert text(pilot, "#title") == "Please see the front desk"
        # The server records it just after answering (so unknown numbers answer as fast as known).
        await until(pilot, lambda: bool(events(live_server, "kiosk_unmatched")))
        assert len(events(live_server, "kiosk_unmatched")) == 1


async def test_early_and_late_arrivals_get_fitting_words(app: KioskApp, live_server: LiveServer) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await tap(pilot, "#appointment")
        await type_phone(pilot, LUNA)
        await wait_for(pilot, PetsScreen)
        await tap(pilot, "#pet-2")  # 12:30, it is 07:50
        await tap(pilot, "#continue")
        await wait_for(pilot, ConsentScreen)
        await tap(pilot, "#check-in")
        await wait_for(pilot, DoneScreen)
        assert "You're early: Luna's appointment is at 12:30 PM." in text(pilot)
        await tap(pilot, "#finish")
        await wait_for(pilot, WelcomeScreen)
        live_server.clock.advance(minutes=25)  # 08:15: the 08:00 visit is late
        await to_consent(pilot, LUNA)
        await tap(pilot, "#check-in")
        await wait_for(pilot, DoneScreen)
        assert "Luna's appointment was at 8:00 AM. We'll fit her in as soon as we can." in text(pilot)


async def test_urgent_help_takes_one_confirm_and_reaches_reception(app: KioskApp, live_server: LiveServer) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await tap(pilot, "#urgent")
        await pilot.pause()
        assert events(live_server, "urgent") == []
        await tap(pilot, "#urgent-yes")
        await wait_for(pilot, UrgentDoneScreen)
        assert text(pilot, "#title") == "A team member is coming"
        assert len(events(live_server, "urgent")) == 1


async def test_urgent_cancel_sends_nothing(app: KioskApp, live_server: LiveServer) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await tap(pilot, "#urgent")
        await pilot.pause()
        await tap(pilot, "#urgent-cancel")
        await wait_for(pilot, WelcomeScreen)
        assert events(live_server, "urgent") == []


async def test_walk_in_joins_the_queue(app: KioskApp, live_server: LiveServer) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await tap(pilot, "#walkin")
        for key in ["A", "N", "N", "space", "L", "E", "E", "ok"]:
            await tap(pilot, f"#key-{key}")
        await pilot.pause()
        for key in ["R", "E", "X", "ok"]:
            await tap(pilot, f"#key-{key}")
        await pilot.pause()
        await tap(pilot, "#species-dog")
        await pilot.pause()
        await tap(pilot, "#reason-injury")
        await wait_for(pilot, DoneScreen)
        msg = text(pilot)
        assert msg.startswith("Thank you. Rex has joined the walk-in list with Dr. "), msg
        assert len(events(live_server, "walkin")) == 1


async def test_spanish_speaker_checks_in(app: KioskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await tap(pilot, "#lang-es")
        await pilot.pause()
        assert text(pilot, "#title") == "¡Bienvenidos! Regístrese aquí."
        await to_consent(pilot, HOUSEHOLD)
        await tap(pilot, "#check-in")
        await wait_for(pilot, DoneScreen)
        msg = text(pilot)
        assert msg.startswith("Gracias. Bella está registrada con la Dra. Chloe Martin. Su espera: unos "), msg
        assert "La llamaremos cuando sea su turno." in msg


async def test_consent_choice_is_recorded(app: KioskApp, live_server: LiveServer) -> None:
    assert dbq.rows_now(live_server.db, "SELECT sms_consent FROM clients WHERE mobile = '+13125550104'") == [(1,)]
    async with app.run_test(size=SIZE) as pilot:
        await tap(pilot, "#appointment")
        await type_phone(pilot, "3125550104")
        await wait_for(pilot, PetsScreen)
        await tap(pilot, "#pet-0")
        await tap(pilot, "#continue")
        await wait_for(pilot, ConsentScreen)
        await tap(pilot, "#consent")
        assert str(pilot.app.screen.query_one("#consent").label).startswith("☐")  # type: ignore[attr-defined]
        await tap(pilot, "#check-in")
        await wait_for(pilot, DoneScreen)
        assert "Please take a seat" in text(pilot)
    assert dbq.rows_now(live_server.db, "SELECT sms_consent FROM clients WHERE mobile = '+13125550104'") == [(0,)]


async def test_start_over_forgets_what_was_typed(app: KioskApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await tap(pilot, "#lang-es")
        await pilot.pause()
        await tap(pilot, "#appointment")
        await type_phone(pilot, HOUSEHOLD)
        await wait_for(pilot, PetsScreen)
        await tap(pilot, "#start-over")
        await wait_for(pilot, WelcomeScreen)
        assert pilot.app.session.phone == "" and pilot.app.session.lang == "en"  # type: ignore[attr-defined]
        await tap(pilot, "#appointment")
        await pilot.pause()
        assert pilot.app.screen.query_one("#keypad").value == ""  # type: ignore[attr-defined]


def _idle_for(app: KioskApp, seconds: float) -> None:
    """As if nobody had touched the screen for `seconds`: deterministic, unlike real waiting."""
    app.last_input -= seconds
    app.idle_tick()


async def test_idle_returns_to_welcome_and_clears_typed_data(live_server: LiveServer, tmp_path: Path) -> None:
    app = kiosk(live_server, tmp_path, idle_s=60, done_idle_s=20)
    async with app.run_test(size=SIZE) as pilot:
        await tap(pilot, "#lang-es")
        await tap(pilot, "#appointment")
        await tap(pilot, "#key-3")
        await tap(pilot, "#key-1")
        _idle_for(app, 50)
        await pilot.pause()
        assert not isinstance(pilot.app.screen, WelcomeScreen)  # 50 s: still the client's
        _idle_for(app, 11)
        await pilot.pause()
        assert isinstance(pilot.app.screen, MoreTime)  # 61 s: "Need more time?" first
        _idle_for(app, 30)
        await pilot.pause()
        assert isinstance(pilot.app.screen, WelcomeScreen)
        assert app.session.lang == "en" and app.session.phone == ""
        await tap(pilot, "#appointment")
        await pilot.pause()
        assert pilot.app.screen.query_one("#keypad").value == ""  # type: ignore[attr-defined]


async def test_done_screen_resets_sooner_than_the_others(live_server: LiveServer, tmp_path: Path) -> None:
    app = kiosk(live_server, tmp_path, idle_s=60, done_idle_s=20)
    async with app.run_test(size=SIZE) as pilot:
        await tap(pilot, "#appointment")
        await type_phone(pilot, HOUSEHOLD)
        await wait_for(pilot, PetsScreen)
        _idle_for(app, 21)
        await pilot.pause()
        assert isinstance(pilot.app.screen, PetsScreen)  # 60 s rule: not yet
        await tap(pilot, "#pet-0")
        await tap(pilot, "#continue")
        await wait_for(pilot, ConsentScreen)
        await tap(pilot, "#check-in")
        await wait_for(pilot, DoneScreen)
        _idle_for(app, 21)
        await pilot.pause()
        assert isinstance(pilot.app.screen, MoreTime)
        _idle_for(app, 30)
        await pilot.pause()
        assert isinstance(pilot.app.screen, WelcomeScreen)
        assert app.session.phone == ""


async def test_offline_check_ins_are_queued_and_delivered_once(live_server: LiveServer, tmp_path: Path) -> None:
    app = kiosk(live_server, tmp_path, retry_s=0.3)
    async with app.run_test(size=SIZE) as pilot:
        # Client 1 looks up while the server is up; the server dies before they confirm.
        await to_consent(pilot, HOUSEHOLD)
        await live_server.stop()
        await tap(pilot, "#check-in")
        await wait_for(pilot, DoneScreen)
        assert "Your check-in is saved and will reach reception" in text(pilot)
        assert "Your wait" not in text(pilot)
        assert str(pilot.app.screen.query_one("#status", Static).render()) == "◆ 1 queued"
        await tap(pilot, "#finish")
        await wait_for(pilot, WelcomeScreen)
        # Client 2 arrives while it is down: no lookup possible, checked in by phone.
        await tap(pilot, "#appointment")
        await type_phone(pilot, LUNA)
        await wait_for(pilot, DoneScreen)
        assert "Your check-in is saved" in text(pilot)
        await tap(pilot, "#finish")
        # Client 3: a walk-in.
        await tap(pilot, "#walkin")
        for key in ["J", "O", "ok"]:
            await tap(pilot, f"#key-{key}")
        await pilot.pause()
        for key in ["F", "I", "D", "O", "ok"]:
            await tap(pilot, f"#key-{key}")
        await pilot.pause()
        await tap(pilot, "#species-dog")
        await pilot.pause()
        await tap(pilot, "#reason-sick")
        await wait_for(pilot, DoneScreen)
        assert app.queued == 3 and not app.online
        assert events(live_server, "checkin") == []
        # The server comes back: the queue is delivered in order, once.
        await live_server.start()
        await until(pilot, lambda: app.queued == 0 and app.online)
        # The walk-in's "saved" screen turns into its live answer, the status mark there throughout.
        status = lambda: str(pilot.app.screen.query_one("#status", Static).render())  # noqa: E731
        await until(pilot, lambda: status() == "● online" and "joined the walk-in list" in text(pilot))
    checkins = [a for a, _ in events(live_server, "checkin")]
    assert checkins[0] == "2026-03-02-v3-0800"
    assert sorted(checkins[1:]) == sorted(a for a in checkins[1:] if "-" in a)  # all of Luna's today
    luna = sum(1 for a in checkins if a in {"2026-03-02-v1-0800", "2026-03-02-v1-1240", "2026-03-02-v2-0935",
                                            "2026-03-02-v2-1545", "2026-03-02-v3-1230"})
    assert luna == 5 and len(checkins) == 6
    assert len(events(live_server, "walkin")) == 1
    # An answer lost on the way back means the kiosk sends again: the server must not double it.
    with sqlite3.connect(tmp_path / "queue.db") as conn:
        assert conn.execute("SELECT count(*) FROM outbox WHERE state = 'delivered'").fetchone() == (3,)
        conn.execute("UPDATE outbox SET state = 'pending'")
    app2 = kiosk(live_server, tmp_path)
    async with app2.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 15
        while app2.queued or await app2.queue.pending_count():
            assert time.monotonic() < deadline, "the re-sent queue was not delivered within 15 s"
            await pilot.pause(0.05)
    assert len(events(live_server, "checkin")) == 6 and len(events(live_server, "walkin")) == 1


async def test_a_burst_queued_in_an_outage_lands_in_full_paced_by_the_kiosk_budget(
        live_server: LiveServer, tmp_path: Path) -> None:
    # Every kiosk route spends one budget per token (here 4 a second): the burst a kiosk's queue
    # delivers after an outage meets 429s, holds in order, and lands in full on the retries.
    live_server.settings = {"kiosk_lookups_per_minute": 4, "kiosk_budget_window_s": 1.0}
    await live_server.stop()
    app = kiosk(live_server, tmp_path, retry_s=0.2, done_idle_s=120, idle_s=120)
    async with app.run_test(size=SIZE) as pilot:
        # Down: Luna's owner types the number, nothing to pick from: a check-in by phone.
        await tap(pilot, "#appointment")
        await type_phone(pilot, LUNA)
        await wait_for(pilot, DoneScreen)
        assert "Your check-in is saved" in text(pilot)
        for i in range(14):
            await app.send("walkin", {"name": f"Walk {i}", "pet": f"Pet {i}", "species": "dog", "reason": "sick"})
        await app.send("checkin", {"phone": "+13125550102", "appointments": []})
        assert app.queued == 16
        await live_server.start()
        await until(pilot, lambda: app.queued == 0 and app.online, seconds=60)
        # Delivered later, the by-phone check-in says "checked in" and names nothing it found:
        # the person at the kiosk picked no visit, so no pet, vet, time or QR code.
        await until(pilot, lambda: "You're checked in" in text(pilot))
        assert "Luna" not in text(pilot) and "Dr." not in text(pilot)
        assert not list(pilot.app.screen.query(QRCode))
    with sqlite3.connect(tmp_path / "queue.db") as conn:
        states = conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
        held = conn.execute("SELECT count(*) FROM outbox WHERE last_error LIKE '429%'").fetchone()[0]
    assert states == [("delivered", 16)] and held > 0  # paced by 429s, none dropped
    theirs = {r[0] for r in dbq.rows_now(
        live_server.db,
        "SELECT a.id FROM appointments a JOIN pets p ON p.id = a.pet_id JOIN clients c ON c.id = p.client_id "
        "WHERE c.mobile IN ('+13125550101', '+13125550102') AND a.day = '2026-03-02' AND a.kind = 'appointment'")}
    checkins = [a for a, _ in events(live_server, "checkin")]
    assert LUNAS <= theirs and len(checkins) == len(set(checkins)) and set(checkins) == theirs
    assert len(events(live_server, "walkin")) == 14


LUNAS = {"2026-03-02-v1-0800", "2026-03-02-v1-1240", "2026-03-02-v2-0935", "2026-03-02-v2-1545", "2026-03-02-v3-1230"}


async def test_black_holed_kiosk_that_knows_it_is_offline_queues_at_once_and_delivers_once_in_order(
        live_server: LiveServer, tmp_path: Path) -> None:
    """Connections accepted, never answered: the first check-in finds it out by waiting the
    HTTP timeout. The next clients see their "saved" screen at once, even while the retry loop
    is waiting out its own timeout, and when the network is back each is delivered once, in
    order, without anyone touching the kiosk."""
    timeout = 2.0
    net = Network(live_server.port)
    await net.set("up")
    api = HttpClinicClient(net.url, live_server.tokens["kiosk"], timeout_s=timeout)
    app = kiosk(live_server, tmp_path, api=api, retry_s=0.2)
    # What became of each client's request: the real app's send, recorded as it answers.
    sends: list[Submitted] = []
    real_send = app.send

    async def send(kind: Kind, payload: JSON) -> Submitted:
        sends.append(await real_send(kind, payload))
        return sends[-1]

    app.send = send  # type: ignore[method-assign]
    try:
        async with app.run_test(size=SIZE) as pilot:
            # Client 1 looks up while all is well; the network turns into a black hole before they confirm.
            await to_consent(pilot, HOUSEHOLD)
            await net.set("blackhole")
            t0 = time.monotonic()
            await tap(pilot, "#check-in")
            await until(pilot, lambda: isinstance(app.screen, DoneScreen))
            finding_out = time.monotonic() - t0
            assert finding_out >= 0.9 * timeout  # the black hole was real: this one waited it out
            assert "Your check-in is saved" in text(pilot) and "Your wait" not in text(pilot)
            assert not app.online and app.queued == 1
            await tap(pilot, "#finish")
            await wait_for(pilot, WelcomeScreen)

            # Client 2 arrives while the retry loop is waiting out a timeout of its own: no
            # lookup (it would only time out), checked in by phone, straight into the queue.
            await tap(pilot, "#appointment")
            await wait_for(pilot, PhoneScreen)
            for d in LUNA:
                await tap(pilot, f"#key-{d}")
            await until(pilot, lambda: app.queue.delivering)
            await tap(pilot, "#key-ok")
            await until(pilot, lambda: isinstance(app.screen, DoneScreen))
            assert "Your check-in is saved" in text(pilot) and "Your wait" not in text(pilot)
            assert len(app.screen.query(QRCode)) == 0
            await tap(pilot, "#finish")
            await wait_for(pilot, WelcomeScreen)

            # Client 3: a walk-in, the same.
            await tap(pilot, "#walkin")
            for key in ["J", "O", "ok"]:
                await tap(pilot, f"#key-{key}")
            await pilot.pause()
            for key in ["F", "I", "D", "O", "ok"]:
                await tap(pilot, f"#key-{key}")
            await pilot.pause()
            await tap(pilot, "#species-dog")
            await wait_for(pilot, WalkinScreen)
            await until(pilot, lambda: app.queue.delivering)
            await tap(pilot, "#reason-sick")
            await until(pilot, lambda: isinstance(app.screen, DoneScreen))
            assert "Your check-in is saved" in text(pilot)

            # Neither waited for a timeout: the kiosk knew it was offline, so their requests went
            # straight into the queue without touching the network (the first one did try). Not
            # a stopwatch: on a loaded 2-core machine a screen change alone took 2.5 s.
            assert [(s.tried, s.answer) for s in sends] == [(True, None), (False, None), (False, None)]
            assert app.queued == 3 and not app.online
            assert str(app.screen.query_one("#status", Static).render()) == "◆ 3 queued"
            assert events(live_server, "checkin") == [] and events(live_server, "walkin") == []

            # The network is back: the retry loop delivers the queue by itself, and the walk-in's
            # screen, still shown, turns into the live one.
            await net.set("up")
            await until(pilot, lambda: app.queued == 0 and app.online)
            assert str(app.screen.query_one("#status", Static).render()) == "● online"
            await until(pilot, lambda: "Fido has joined the walk-in list" in text(pilot))
            assert len(app.screen.query(QRCode)) == 1
            await tap(pilot, "#finish")
            await wait_for(pilot, WelcomeScreen)

            # Online again: the next client gets the live estimate at once, as before the outage.
            await tap(pilot, "#appointment")
            await type_phone(pilot, HOUSEHOLD)
            await wait_for(pilot, PetsScreen)
            await tap(pilot, "#pet-1")
            await tap(pilot, "#continue")
            await wait_for(pilot, ConsentScreen)
            await tap(pilot, "#check-in")
            await wait_for(pilot, DoneScreen)
            assert "Max is checked in with Dr. Ana Ruiz" in text(pilot) and "Your wait" in text(pilot)
            assert len(app.screen.query(QRCode)) == 1
    finally:
        await net.close()
    # Each once, in the order taken: Bella, then Luna's visits (by phone: all of today's), then Max.
    checkins = [a for a, _ in events(live_server, "checkin")]
    assert checkins[0] == "2026-03-02-v3-0800"
    assert set(checkins[1:6]) == LUNAS and len(checkins[1:6]) == 5
    assert checkins[6:] == ["2026-03-02-v1-0820"]
    assert len(events(live_server, "walkin")) == 1
    with sqlite3.connect(tmp_path / "queue.db") as conn:
        assert conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall() == [("delivered", 4)]
