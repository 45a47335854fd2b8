"""One time, duration and phone format per language everywhere (issue 15 item 8): the texts,
the client pages, the console, the lobby display and the kiosk write them the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kiosk.screens.phone import display_number
from kiosk.wording import fmt_minutes, fmt_time, wait_text
from notifier import formats
from server.domain import Estimate
from server.web import i18n
from server.web.board import Lane, VisitView
from server.web.render import behind_text, eta_text, hm

TZ = ZoneInfo("America/Chicago")


@pytest.mark.parametrize(("h", "m", "en", "es"), [(9, 5, "9:05 AM", "09:05"), (11, 45, "11:45 AM", "11:45"),
                                                  (12, 0, "12:00 PM", "12:00"), (0, 30, "12:30 AM", "00:30"),
                                                  (17, 10, "5:10 PM", "17:10")])
def test_one_clock_format_per_language_in_texts_pages_console_and_kiosk(h: int, m: int, en: str, es: str) -> None:
    t = datetime(2026, 3, 2, h, m, tzinfo=TZ)
    utc = t.astimezone(UTC)
    assert formats.clock(utc, TZ, "en") == en == hm(utc, TZ) == i18n.clock(utc, TZ, "en") == fmt_time("en", t)
    assert formats.clock(utc, TZ, "es") == es == i18n.clock(utc, TZ, "es") == fmt_time("es", t)


@pytest.mark.parametrize(("n", "text"), [(0, "0 min"), (45, "45 min"), (60, "1 h"), (100, "1 h 40 min"),
                                         (185, "3 h 5 min")])
def test_waits_over_an_hour_read_in_hours_and_minutes(n: int, text: str) -> None:
    assert formats.duration(n) == text == fmt_minutes("en", n) == fmt_minutes("es", n)


def test_lobby_display_wait_over_an_hour_is_not_a_count_of_minutes() -> None:
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    v = VisitView(id="a", kind="appointment", status="waiting", vet="v1", pet="Max", species=None, sex=None,
                  client_id=None, client_name=None, mobile=None, sms_consent=False, notes="", type_name=None,
                  booked_min=15, scheduled=None, arrived=None, started=None, ended=None, priority=None,
                  estimate=Estimate("a", now + timedelta(minutes=130), now + timedelta(minutes=100),
                                    now + timedelta(minutes=180)))
    assert eta_text(v, now) == "about 1 h 40 min–3 h"
    v.estimate = Estimate("a", now + timedelta(minutes=15), now + timedelta(minutes=10), now + timedelta(minutes=20))
    assert eta_text(v, now) == "about 10–20 min"
    lane = Lane(vet="v1", name="Dr. Ana Ruiz", short_name="Dr. Ruiz", away_until=None, away_reason=None,
                behind_min=98, behind_reason="emergency")
    assert behind_text(lane) == "about 1 h 40 min behind (emergency)"


@pytest.mark.parametrize(("number", "shown"), [("+13125550100", "(312) 555-0100"),
                                               ("+1 312 555 0101", "(312) 555-0101"),
                                               ("not a number", "not a number")])
def test_phone_numbers_in_the_national_format(number: str, shown: str) -> None:
    assert formats.national(number) == shown


@pytest.mark.parametrize(("typed", "shown"), [("1", "1"), ("123", "123"), ("1234", "123-4"), ("12345", "123-45"),
                                              ("3125550", "312-555-0"), ("3125550100", "312-555-0100"),
                                              ("13125550100", "1-312-555-0100")])
def test_keypad_shows_partial_numbers_as_they_will_be_read(typed: str, shown: str) -> None:
    assert display_number(typed, "US") == shown


def test_a_range_says_am_or_pm_once_when_both_ends_share_it() -> None:
    at = datetime(2026, 3, 2, 9, 50, tzinfo=TZ)
    assert formats.clock_range(at, at + timedelta(minutes=30), TZ, "en") == "9:50 – 10:20 AM"
    later = at + timedelta(hours=2)
    assert formats.clock_range(later, later + timedelta(minutes=30), TZ) == "11:50 AM – 12:20 PM"
    assert formats.clock_range(at, at + timedelta(minutes=30), TZ, "es") == "09:50 – 10:20"


def test_the_kiosk_gives_no_range_whose_ends_are_the_same() -> None:
    assert wait_text("en", {"wait_min": 5, "low_min": 5, "high_min": 5}) == "Your wait: about 5 min."
    assert wait_text("es", {"wait_min": 5, "low_min": 4, "high_min": 5}) == "Su espera: unos 5 min."
    assert wait_text("en", {"wait_min": 15, "low_min": 10, "high_min": 25}) == "Your wait: about 15 min (10–25 min)."
    assert wait_text("en", {"wait_min": 1, "low_min": 0, "high_min": 2}) == "You'll be called very soon."
