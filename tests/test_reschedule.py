"""The reschedule link's page (/r/{token}): open slots, booking, requests, cancelling, and every
way a link can fail (used, expired, forged, a slot taken meanwhile, bad input) as a friendly page,
in the client's language (English or Spanish, with a switch link).

Luna's owner speaks Spanish in the seeded clinic; the tests about what the page does (rather than
its language) make her an English speaker first (`set_language`), so they read as they always did."""

from __future__ import annotations

import asyncio
import re
import shutil
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from notifier.links import make_token
from server.web.board import inbox
from server.web.reschedule import reschedule_settings
from tests import dbq
from tests.conftest import START, TZ, Api, LiveServer, link_secret
from tests.test_web_console import add_user, log_in
from tests.test_web_pages import lang_attr, set_language, switch_link

_SIGNING: dict[str, bytes] = {}  # what this test's clinic signs links with (conftest's link_secret)
A_0800 = "2026-03-02-v1-0800"  # Luna (Maria Lopez: Spanish, consent, mobile), Dr. Ruiz at 8:00
PHONE = "+13125550100"  # the clinic's
LUNA_MOBILE = "+13125550101"


@pytest.fixture(autouse=True)
def _links_of_this_clinic(clinic_db: str) -> None:
    _SIGNING["key"] = link_secret(clinic_db).encode()


def link(visit: str = A_0800, now: datetime = START, secret: bytes | None = None) -> str:
    return f"/r/{make_token(secret or _SIGNING['key'], visit, now)}"


async def sql(api: Api, q: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return await dbq.rows(api.db, q, *params)


async def set_settings(api: Api, **settings: Any) -> None:
    await dbq.set_settings(api.db, replace=True, **settings)


def slots_in(html: str) -> list[tuple[str, datetime, str]]:
    """(param, start, vet) of every slot link on the page."""
    out = []
    for param in re.findall(r'\?slot=([^"&]+)', html):
        raw = unquote(unescape(param))
        stamp, _, vet = raw.partition(".")
        out.append((raw, datetime.strptime(stamp, "%Y%m%dT%H%MZ").replace(tzinfo=UTC), vet))
    return out


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:800]
    return m.group(1)


async def booked_min(api: Api, visit: str = A_0800) -> float:
    return float((await sql(api, "SELECT booked_min FROM appointments WHERE id = ?", (visit,)))[0][0])


async def book(api: Api, url: str, slot: str, *, status: int = 200) -> str:
    page = await api.client.get(url, params={"slot": slot})
    assert page.status == 200, await page.text()
    resp = await api.client.post(url, data={"csrf": csrf_of(await page.text()), "action": "book", "slot": slot})
    text = await resp.text()
    assert resp.status == status, text
    return unescape(text)


# -- the list of open slots ----------------------------------------------------------------------


async def test_valid_link_lists_slots_that_avoid_booked_visits_and_respect_length(api: Api) -> None:
    # Tomorrow Dr. Ruiz has one booking, 9:00-9:30.
    resp = await api.client.post("/api/schedule", headers=api.h("pms"), json={"appointments": [
        {"id": "t1", "vet": "v1", "type": "wellness", "pet": "p2", "scheduled": "2026-03-03T09:00:00-06:00",
         "booked_min": 30}]})
    assert resp.status == 200, await resp.text()
    await set_language(api, "en")
    url = link()
    page = await api.client.get(url)
    html = await page.text()
    assert page.status == 200
    assert "Luna" in html and "Dr. Ruiz" in html and "Monday, March 2 at 8:00 AM" in html
    slots = slots_in(html)
    assert slots and all(vet == "v1" for _, _, vet in slots)
    length = timedelta(minutes=await booked_min(api))
    starts = [s for _, s, _ in slots]
    assert starts == sorted(starts)
    busy = [(dbq.when(r[0]), dbq.when(r[0]) + timedelta(minutes=r[1]))  # type: ignore[operator]
            for r in await sql(api, "SELECT scheduled, booked_min FROM appointments WHERE vet_id = 'v1' "
                                    "AND status = 'booked'")]
    for s in starts:
        local = s.astimezone(TZ)
        assert s >= START + timedelta(hours=1)
        assert local.weekday() < 5 and local.hour >= 8 and (local + length).time() <= datetime(2026, 1, 1, 17).time()
        assert all(s + length <= b0 or s >= b1 for b0, b1 in busy), f"{local} overlaps a booking"
    tomorrow = {s.astimezone(TZ).strftime("%H:%M") for s in starts if s.astimezone(TZ).day == 3}
    assert "09:30" in tomorrow and "09:00" not in tomorrow and "09:15" not in tomorrow
    before = datetime(2026, 3, 3, 9, 0, tzinfo=TZ) - length
    # The last start that still ends by 9:00 (on the 15-min grid) is offered; later ones are not.
    last_fit = before.replace(minute=before.minute - before.minute % 15)
    assert last_fit.strftime("%H:%M") in tomorrow
    assert (last_fit + timedelta(minutes=15)).strftime("%H:%M") not in tomorrow
    # Grouped by day, in the clinic's timezone, over the next 7 days (Mon 2 - Sun 8: weekdays only).
    assert "Tuesday, March 3" in html and "Friday, March 6" in html and "Saturday" not in html
    assert "Monday, March 9" not in html


async def test_any_vet_toggle_offers_each_time_once_with_their_vet_when_free(api: Api) -> None:
    resp = await api.client.post("/api/schedule", headers=api.h("pms"), json={"appointments": [
        {"id": "t1", "vet": "v1", "type": "wellness", "pet": "p2", "scheduled": "2026-03-03T09:00:00-06:00",
         "booked_min": 30}]})
    assert resp.status == 200
    url = link()
    html = await (await api.client.get(url)).text()
    assert f'href="{url}?all=1"' in html  # a plain link: works without JavaScript
    every = await (await api.client.get(url, params={"all": "1"})).text()
    slots = slots_in(every)
    starts = [s for _, s, _ in slots]
    assert len(starts) == len(set(starts))
    tuesday = {s.astimezone(TZ).strftime("%H:%M"): vet for _, s, vet in slots if s.astimezone(TZ).day == 3}
    assert tuesday["09:00"] == "v2" and tuesday["09:30"] == "v1" and tuesday["08:00"] == "v1"
    assert "Dr. Okafor" in every and f'href="{url}"' in every  # and back to Dr. Ruiz only
    # A slot chosen there keeps the "any vet" view on the way back.
    param = next(p for p, s, v in slots if v == "v2")
    confirm = await (await api.client.get(url, params={"slot": param, "all": "1"})).text()
    assert "Dr. Okafor" in confirm and f'href="{url}?all=1"' in confirm


async def test_page_has_the_status_pages_security_headers_and_no_script(api: Api) -> None:
    resp = await api.client.get(link())
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["Cache-Control"] == "no-store"
    html = await resp.text()
    assert "<script" not in html and "style=" not in html
    assert 'name="viewport"' in html and f'href="tel:{PHONE}"' in html and "(312) 555-0100" in html


async def test_opening_hours_and_days_come_from_the_clinic_settings(api: Api) -> None:
    await set_settings(api, opening_hours={"tue": ["10:00", "12:00"], "sat": ["09:00", "10:00"]},
                       reschedule_days=3)
    html = await (await api.client.get(link())).text()
    local = [s.astimezone(TZ) for _, s, _ in slots_in(html)]
    assert local and all(t.weekday() == 1 and 10 <= t.hour and t.hour < 12 for t in local)


def test_malformed_settings_fall_back_to_defaults() -> None:
    s = reschedule_settings({"reschedule_mode": "maybe", "opening_hours": {"mon": ["17:00", "08:00"]},
                             "reschedule_days": "lots"})
    assert s.mode == "book" and s.days == 7 and sorted(s.opening_hours) == [0, 1, 2, 3, 4]
    assert reschedule_settings({"reschedule_mode": "request"}).mode == "request"
    assert reschedule_settings({"opening_hours": {"sun": None, "mon": ["09:00", "13:00"]}}).opening_hours.keys() == {0}


# -- booking -------------------------------------------------------------------------------------


async def test_booking_moves_the_visit_texts_once_and_uses_up_the_link(api: Api) -> None:
    await set_language(api, "en")
    url = link()
    param, start, _ = next(s for s in slots_in(await (await api.client.get(url)).text())
                           if s[1].astimezone(TZ).day == 3)
    html = await book(api, url, param)
    assert "You're booked" in html and "Tuesday, March 3" in html
    old = await sql(api, "SELECT status, pet_id, type_id, booked_min FROM appointments WHERE id = ?", (A_0800,))
    new = await sql(api, "SELECT status, pet_id, type_id, booked_min, scheduled, vet_id, day FROM appointments "
                         "WHERE id = ?", (f"{A_0800}-r1",))
    assert old[0][0] == "cancelled"
    assert new and new[0][:4] == ("booked", *old[0][1:])
    assert dbq.when(new[0][4]) == start and (new[0][5], str(new[0][6])) == ("v1", "2026-03-03")
    # The estimator no longer counts the old visit.
    est = await (await api.client.get("/api/estimates", headers=api.h("reception"))).json()
    assert A_0800 not in {e["appointment"] for e in est["estimates"]}
    # Exactly one confirmation text, in Luna's owner's language (English here; Spanish below).
    texts = await sql(api, "SELECT to_number, body, kind FROM outbox WHERE visit_id = ?", (A_0800,))
    assert len(texts) == 1
    to, body, kind = texts[0]
    assert to == LUNA_MOBILE and kind == "reschedule_booked"
    assert "Luna" in body and "Tue Mar 3" in body and "Dr. Ruiz" in body and "(312) 555-0100" in body
    # The link is spent: its page says so (410), and a second post changes nothing.
    again = await api.client.get(url)
    assert again.status == 410 and "already been used" in await again.text() and PHONE in await again.text()
    replay = await api.client.post(url, data={"csrf": "x", "action": "book", "slot": param})
    assert replay.status == 410
    assert len(await sql(api, "SELECT 1 FROM appointments WHERE id LIKE ?", (f"{A_0800}-r%",))) == 1


async def test_two_taps_at_once_book_once(api: Api) -> None:
    url = link()
    param = slots_in(await (await api.client.get(url)).text())[0][0]
    csrf = csrf_of(await (await api.client.get(url, params={"slot": param})).text())
    data = {"csrf": csrf, "action": "book", "slot": param}
    first, second = await asyncio.gather(api.client.post(url, data=data), api.client.post(url, data=data))
    assert sorted([first.status, second.status]) == [200, 410]
    assert len(await sql(api, "SELECT 1 FROM appointments WHERE id LIKE ?", (f"{A_0800}-r%",))) == 1
    assert len(await sql(api, "SELECT 1 FROM outbox WHERE visit_id = ?", (A_0800,))) == 1


async def test_slot_taken_meanwhile_gets_a_friendly_conflict_and_keeps_the_link(api: Api) -> None:
    await set_language(api, "en")
    url = link()
    param, start, _ = next(s for s in slots_in(await (await api.client.get(url)).text())
                           if s[1].astimezone(TZ).day == 4)
    page = await api.client.get(url, params={"slot": param})
    csrf = csrf_of(await page.text())
    # Someone else takes that time before Luna's owner taps "Book".
    resp = await api.client.post("/api/schedule", headers=api.h("pms"), json={"appointments": [
        {"id": "rival", "vet": "v1", "type": "vacc", "pet": "p5", "scheduled": start.isoformat(), "booked_min": 15}]})
    assert resp.status == 200
    taken = await api.client.post(url, data={"csrf": csrf, "action": "book", "slot": param})
    assert taken.status == 409 and "just taken" in await taken.text()
    assert (await sql(api, "SELECT status FROM appointments WHERE id = ?", (A_0800,)))[0][0] == "booked"
    assert not await sql(api, "SELECT 1 FROM outbox")
    assert (await api.client.get(url)).status == 200  # not used up: choose another time


async def test_client_without_consent_gets_no_text(api: Api) -> None:
    mochi = (await sql(api, "SELECT id FROM appointments WHERE pet_id = 'p4' ORDER BY scheduled"))[0][0]
    url = link(mochi)
    param = slots_in(await (await api.client.get(url)).text())[-1][0]
    assert "You're booked" in await book(api, url, param)
    assert not await sql(api, "SELECT 1 FROM outbox WHERE visit_id = ?", (mochi,))


# -- request mode and cancelling ---------------------------------------------------------------


async def test_request_mode_files_a_request_that_reception_sees(api: Api) -> None:
    await set_settings(api, reschedule_mode="request")
    await set_language(api, "en")
    url = link()
    html = await (await api.client.get(url)).text()
    assert "Reception will confirm" in html
    param = slots_in(html)[-1][0]
    done = await book(api, url, param)
    assert "Request sent" in done
    assert (await sql(api, "SELECT status FROM appointments WHERE id = ?", (A_0800,)))[0][0] == "booked"
    async with dbq.opened(api.db) as store, store.read() as q:
        box = await inbox(q)
    assert len(box) == 1 and box[0]["kind"] == "reschedule" and box[0]["visit_id"] == A_0800
    assert "Friday, March 6" in box[0]["body"]
    texts = await sql(api, "SELECT kind FROM outbox WHERE visit_id = ?", (A_0800,))
    assert texts == [("reschedule_requested",)]
    await add_user(api.db)
    await log_in(api.client)
    console = unescape(await (await api.client.get("/console")).text())
    assert "wants to reschedule" in console and "Friday, March 6" in console
    assert (await api.client.get(url)).status == 410


async def test_cancel_has_a_confirm_step_and_cancels(api: Api) -> None:
    await set_language(api, "en")
    url = link()
    confirm = await api.client.get(url, params={"cancel": "1"})
    html = unescape(await confirm.text())
    assert "Cancel Luna's visit?" in html and "Yes, cancel the visit" in html
    assert (await sql(api, "SELECT status FROM appointments WHERE id = ?", (A_0800,)))[0][0] == "booked"
    resp = await api.client.post(url, data={"csrf": csrf_of(html), "action": "cancel"})
    assert resp.status == 200 and "Visit cancelled" in await resp.text()
    assert (await sql(api, "SELECT status FROM appointments WHERE id = ?", (A_0800,)))[0][0] == "cancelled"
    assert [r[0] for r in await sql(api, "SELECT kind FROM outbox WHERE visit_id = ?", (A_0800,))] == [
        "reschedule_cancelled"]
    est = await (await api.client.get("/api/estimates", headers=api.h("reception"))).json()
    assert A_0800 not in {e["appointment"] for e in est["estimates"]}
    assert (await api.client.get(url)).status == 410


# -- links that cannot be used, bad input --------------------------------------------------------


async def test_expired_link_gets_a_friendly_410(api: Api) -> None:
    await set_language(api, "en")
    url = link()
    api.clock.advance(hours=25)
    resp = await api.client.get(url)
    html = await resp.text()
    assert resp.status == 410 and "expired" in html and PHONE in html
    post = await api.client.post(url, data={"action": "cancel"})
    assert post.status == 410


@pytest.mark.parametrize("token", [
    "forged",
    "abc.def",
    "%C3%A9%C3%A9.%C3%A9",
    "x" * 2000,
])
async def test_forged_links_get_a_friendly_404_never_a_500(api: Api, token: str) -> None:
    for resp in (await api.client.get(f"/r/{token}"), await api.client.post(f"/r/{token}", data={"action": "book"})):
        html = unescape(await resp.text())
        assert resp.status == 404 and "isn't valid" in html and PHONE in html


async def test_link_signed_with_another_secret_or_tampered_is_forged(api: Api) -> None:
    other = await api.client.get(link(secret=b"someone-else"))
    assert other.status == 404
    url = link()
    tampered = url[:-1] + ("A" if url[-1] != "A" else "B")
    assert (await api.client.get(tampered)).status == 404


async def test_link_to_an_unknown_or_finished_visit_is_friendly(api: Api) -> None:
    await set_language(api, "en")
    assert (await api.client.get(link("no-such-visit"))).status == 404
    await api.event({"type": "start", "appointment": A_0800})
    resp = await api.client.get(link())
    assert resp.status == 410 and "has started" in await resp.text()


@pytest.mark.parametrize("data", [
    {"action": "move"},
    {"action": "book"},
    {"action": "book", "slot": "garbage"},
    {"action": "book", "slot": "20260303T0900Z"},
    {"action": "book", "slot": "20260303T0900Z.nobody"},
    {"action": "book", "slot": "20260303T0900Z.v1"},  # 3:00am Chicago: not a time we offer
    {"action": "book", "slot": "20260303T1507Z.v1"},  # off the 15-min grid
    {"action": "book", "slot": "20260307T1500Z.v1"},  # a Saturday
])
async def test_bad_form_input_gets_a_400_page_and_keeps_the_link(api: Api, data: dict[str, str]) -> None:
    url = link()
    csrf = csrf_of(await (await api.client.get(url, params={"cancel": "1"})).text())
    resp = await api.client.post(url, data={"csrf": csrf, **data})
    assert resp.status == 400, await resp.text()
    assert (await api.client.get(url)).status == 200


async def test_post_without_the_csrf_token_is_refused(api: Api) -> None:
    url = link()
    for csrf in ("", "é" * 32, "0" * 32):
        resp = await api.client.post(url, data={"csrf": csrf, "action": "cancel"})
        assert resp.status == 403
    assert (await sql(api, "SELECT status FROM appointments WHERE id = ?", (A_0800,)))[0][0] == "booked"


async def test_the_kiosk_status_link_cannot_cancel_the_visit(api: Api) -> None:
    # A stranger who typed a client's number at the kiosk scans its QR code: the status page
    # (and its live stream) must not lead to a page that cancels or moves the visit. That
    # link is only texted to the client's phone (reply 2), or reception does it.
    from notifier.links import status_token
    from tests.test_web_pages import read_sse

    token = status_token(api.secret, A_0800)
    html = unescape(await (await api.client.get(f"/s/{token}?lang=en")).text())
    assert "/r/" not in html and "Reply 2 to one of our texts" in html
    live = await api.client.get(f"/s/{token}/live?lang=en")
    first = (await read_sse(live, 5))["status"]
    live.close()
    assert "/r/" not in first and "Reply 2" in first
    assert (await sql(api, "SELECT status FROM appointments WHERE id = ?", (A_0800,)))[0][0] == "booked"


# -- the client's language ----------------------------------------------------------------------


async def test_spanish_client_reschedules_in_spanish_end_to_end(api: Api) -> None:
    url = link()  # Luna's owner, Maria Lopez, chose Spanish at the kiosk
    resp = await api.client.get(url)
    html = unescape(await resp.text())
    assert resp.status == 200 and lang_attr(html) == "es"
    assert "<h1>Cambiar la cita de Luna</h1>" in html and "Ahora: <strong>lunes 2 de marzo, 08:00</strong>" in html
    assert "Toque una hora nueva" in html and "Cualquier veterinario" in html and "Prefiero cancelar" in html
    # Days and times the Spanish way, in the clinic's timezone: no English names, no am/pm.
    assert "martes 3 de marzo" in html and "viernes 6 de marzo" in html and "sábado" not in html
    assert not re.search(r"Monday|Tuesday|March|\d[ap]m\b|Change |Questions", html)
    assert re.findall(r'class="slot" href="[^"]+">(\d\d:\d\d)<', html)
    assert "¿Preguntas? Llámenos al" in html and f'href="tel:{PHONE}"' in html
    assert switch_link(html) == (f"{url}?lang=en", "English")
    # Still the status page's security headers and no script.
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"] and "<script" not in html
    param, start, _ = next(s for s in slots_in(html) if s[1].astimezone(TZ).day == 3)
    confirm = unescape(await (await api.client.get(url, params={"slot": param})).text())
    local = start.astimezone(TZ)
    assert lang_attr(confirm) == "es" and "¿Cambiar la cita de Luna?" in confirm
    assert f"Nueva hora: <strong>martes 3 de marzo, {local:%H:%M}</strong>" in confirm
    assert "Reservar esta hora" in confirm and "Elegir otra hora" in confirm
    done = await book(api, url, param)
    assert lang_attr(done) == "es" and "<h1>Cita reservada</h1>" in done
    assert f"La cita de Luna queda para el <strong>martes 3 de marzo, {local:%H:%M}</strong>" in done
    assert "Le enviamos un mensaje de texto" in done and "lang-switch" not in done  # the link is spent
    # Booked for real, and texted once in Spanish.
    assert (await sql(api, "SELECT status FROM appointments WHERE id = ?", (A_0800,)))[0][0] == "cancelled"
    new = await sql(api, "SELECT status, scheduled FROM appointments WHERE id = ?", (f"{A_0800}-r1",))
    assert new and new[0][0] == "booked" and dbq.when(new[0][1]) == start
    texts = await sql(api, "SELECT body FROM outbox WHERE visit_id = ?", (A_0800,))
    assert len(texts) == 1 and "martes 3 de marzo" in texts[0][0]
    again = await api.client.get(url)
    used = unescape(await again.text())
    assert again.status == 410 and lang_attr(used) == "es" and "Este enlace ya se usó" in used and PHONE in used


async def test_switch_link_flips_the_language_and_back_without_javascript(api: Api) -> None:
    url = link()
    spanish = await (await api.client.get(url)).text()
    href, name = switch_link(spanish)
    assert name == "English" and href.startswith(url)
    english = unescape(await (await api.client.get(href)).text())
    assert lang_attr(english) == "en" and "<h1>Change Luna's visit</h1>" in english
    assert "Monday, March 2 at 8:00 AM" in english and "Tuesday, March 3" in english
    # Every link and form on the page keeps the choice...
    assert f'href="{url}?all=1&lang=en"' in english and f'href="{url}?cancel=1&lang=en"' in english
    assert all("&lang=en" in m for m in re.findall(r'class="slot" href="([^"]+)"', english))
    back, name = switch_link(english)
    assert (back, name) == (f"{url}?lang=es", "Español")
    assert "<h1>Cambiar la cita de Luna</h1>" in unescape(await (await api.client.get(back)).text())
    # ... through the confirm step (whose own switch link keeps the slot) and the booking itself.
    param = next(s for s in slots_in(english) if s[1].astimezone(TZ).day == 4)[0]
    confirm = unescape(await (await api.client.get(url, params={"slot": param, "lang": "en"})).text())
    assert "Book this time" in confirm and f'<form method="post" action="{url}?lang=en">' in confirm
    assert switch_link(confirm)[0] == f"{url}?slot={param}&lang=es"
    assert "¿Cambiar la cita de Luna?" in unescape(await (await api.client.get(switch_link(confirm)[0])).text())
    done = await api.client.post(f"{url}?lang=en", data={"csrf": csrf_of(confirm), "action": "book", "slot": param})
    html = unescape(await done.text())
    assert done.status == 200 and lang_attr(html) == "en" and "You're booked" in html
    # The text still follows the language she chose at the kiosk.
    texts = await sql(api, "SELECT body FROM outbox WHERE visit_id = ?", (A_0800,))
    assert len(texts) == 1 and "miercoles 4 de marzo" in texts[0][0]


async def test_expired_link_gets_its_410_in_spanish_for_a_spanish_client(api: Api) -> None:
    url = link()
    api.clock.advance(hours=25)
    for resp in (await api.client.get(url), await api.client.post(url, data={"action": "cancel"})):
        html = unescape(await resp.text())
        assert resp.status == 410 and lang_attr(html) == "es"
        assert "<h1 class=\"sorry\">Este enlace venció</h1>" in html and "Llámenos" in html and PHONE in html
    english = unescape(await (await api.client.get(url, params={"lang": "en"})).text())
    assert lang_attr(english) == "en" and "This link has expired" in english


async def test_other_refusals_speak_spanish_too(api: Api) -> None:
    url = link()
    stale = await api.client.post(url, data={"csrf": "0" * 32, "action": "cancel"})
    assert stale.status == 403 and "Inténtelo de nuevo" in unescape(await stale.text())
    csrf = csrf_of(await (await api.client.get(url, params={"cancel": "1"})).text())
    bad = await api.client.post(url, data={"csrf": csrf, "action": "move"})
    assert bad.status == 400 and "No entendimos qué eligió" in unescape(await bad.text())
    param, start, _ = slots_in(await (await api.client.get(url)).text())[-1]
    resp = await api.client.post("/api/schedule", headers=api.h("pms"), json={"appointments": [
        {"id": "rival", "vet": "v1", "type": "vacc", "pet": "p5", "scheduled": start.isoformat(), "booked_min": 15}]})
    assert resp.status == 200
    taken = await api.client.post(url, data={"csrf": csrf, "action": "book", "slot": param})
    html = unescape(await taken.text())
    assert taken.status == 409 and lang_attr(html) == "es" and "acaba de reservar" in html
    assert f'<a class="back" href="{url}">Ver los horarios libres</a>' in html
    await api.event({"type": "start", "appointment": A_0800})
    started = unescape(await (await api.client.get(url)).text())
    assert "La cita de Luna ya empezó" in started


@pytest.mark.parametrize(("header", "query", "lang"), [
    ("es-MX,es;q=0.9,en;q=0.8", "", "es"),
    ("fr-FR,fr;q=0.9,en;q=0.8,es;q=0.7", "", "en"),
    ("fr-FR,es;q=0.5,en;q=0.4", "", "es"),
    ("en-US,en;q=0.9,es;q=0.8", "", "en"),
    ("de", "", "en"),
    ("", "", "en"),
    ("en-US", "?lang=es", "es"),
])
async def test_forged_link_speaks_the_browsers_language(api: Api, header: str, query: str, lang: str) -> None:
    headers = {"Accept-Language": header} if header else {}
    for resp in (await api.client.get(f"/r/forged{query}", headers=headers),
                 await api.client.post(f"/r/forged{query}", data={"action": "book"}, headers=headers)):
        html = unescape(await resp.text())
        assert resp.status == 404 and lang_attr(html) == lang
        assert ("Este enlace no es válido" if lang == "es" else "This link isn't valid") in html


async def test_english_clients_pages_stay_english_whatever_the_browser(api: Api) -> None:
    mochi = (await sql(api, "SELECT id FROM appointments WHERE pet_id = 'p4' ORDER BY scheduled"))[0][0]
    url = link(mochi)  # Aiko Tanaka: English
    resp = await api.client.get(url, headers={"Accept-Language": "es"})  # a stored choice beats the browser
    html = unescape(await resp.text())
    assert lang_attr(html) == "en" and "<h1>Change Mochi's visit</h1>" in html and "Tap a new time" in html
    assert switch_link(html) == (f"{url}?lang=es", "Español")
    assert re.findall(r'class="slot" href="[^"?]+\?slot=[^"&]+">(\d{1,2}:\d\d [AP]M)<', html)
    cancel = unescape(await (await api.client.get(url, params={"cancel": "1"})).text())
    assert "Cancel Mochi's visit?" in cancel and f'<form method="post" action="{url}">' in cancel


# -- in a phone's browser ------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists() and not shutil.which("chromium"),
                    reason="needs Debian's chromium")
async def test_phone_opens_the_link_picks_a_slot_and_sees_the_confirmation(live_server: LiveServer) -> None:
    from playwright.async_api import async_playwright

    from tests.test_browser import ARGS, CHROMIUM

    url = live_server.base_url + link()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            errors: list[str] = []
            page.on("response", lambda r: errors.append(r.url) if r.status >= 400 and "favicon" not in r.url
                    else None)
            await page.goto(url)
            # Luna's owner reads Spanish: so does the page her text links to.
            await page.get_by_role("heading", name="Cambiar la cita de Luna").wait_for(timeout=5000)
            first = page.locator("a.slot").first
            box = await first.bounding_box()
            assert box is not None and box["height"] >= 44 and box["x"] + box["width"] <= 390  # thumb-sized, fits
            when = await first.inner_text()
            await first.click()
            await page.get_by_role("button", name="Reservar esta hora").click()
            await page.get_by_role("heading", name="Cita reservada").wait_for(timeout=5000)
            assert when.strip() in await page.locator("p.to").inner_text()
            assert "Le enviamos un mensaje" in await page.content()
            assert await page.get_attribute("html", "lang") == "es"
            assert not errors, errors
        finally:
            await browser.close()


async def test_a_checked_in_client_who_cancels_by_link_shows_at_the_desk_and_in_recent_actions(api: Api) -> None:
    await set_language(api, "en")
    await api.event({"type": "checkin", "appointment": A_0800})  # Luna's owner is in the lobby
    url = link()
    confirm = await api.client.get(url, params={"cancel": "1"})
    resp = await api.client.post(url, data={"csrf": csrf_of(unescape(await confirm.text())), "action": "cancel"})
    assert resp.status == 200
    await add_user(api.db)
    assert (await log_in(api.client)).status in (302, 303)
    desk = unescape(await (await api.client.get("/console")).text())
    # A notice at the desk: she may still be sitting there for a visit that is gone ...
    assert "Luna's owner had checked in, then cancelled their visit by text link" in desk
    # ... and the change is in Recent actions, by the pet's name, from the log alone.
    assert "Luna cancelled by the client" in desk
    changes = await (await api.client.get("/api/changes", headers=api.h("pms"))).json()
    assert [(c["type"], c["appointment"], c.get("pet"), c["actor"]) for c in changes["changes"]] == [
        ("cancel_visit", A_0800, "Luna", "client")]


async def test_a_free_time_today_with_another_vet_comes_before_later_days(api: Api) -> None:
    # Today every vet is booked through; then Dr. Okafor's 11:00 client cancels.
    await set_language(api, "en")
    url = link()
    before = slots_in(await (await api.client.get(url)).text())
    assert before and all(s.astimezone(TZ).date() > START.date() for _, s, _ in before)
    freed = min((r for r in await sql(api, "SELECT id, scheduled, booked_min FROM appointments "
                                           "WHERE vet_id = 'v2' AND status = 'booked'")
                 if dbq.when(r[1]) >= START + timedelta(hours=3)), key=lambda r: r[1])
    theirs = link(freed[0])
    page = await api.client.get(theirs, params={"cancel": "1"})
    resp = await api.client.post(theirs, data={"csrf": csrf_of(await page.text()), "action": "cancel"})
    assert resp.status == 200, await resp.text()
    html = unescape(await (await api.client.get(url)).text())
    slots = slots_in(html)
    first_param, first, vet = slots[0]
    # The first offer is today, with Dr. Okafor, named on the button; then Dr. Ruiz's days as before.
    assert first.astimezone(TZ).date() == START.date() and vet == "v2"
    assert dbq.when(freed[1]) <= first
    assert [s for _, s, v in slots if v == "v1"] == [s for _, s, _ in before]
    assert re.search(r"\d:\d\d [AP]M<span class=\"slot-vet\">Dr\. Okafor</span>", html), html[:3000]
    # Chosen from there, it books with Dr. Okafor.
    done = await book(api, url, first_param)
    assert "Dr. Okafor" in done
    new = await sql(api, "SELECT scheduled, vet_id, day FROM appointments WHERE id = ?", (f"{A_0800}-r1",))
    assert dbq.when(new[0][0]) == first and (new[0][1], str(new[0][2])) == ("v2", "2026-03-02")
