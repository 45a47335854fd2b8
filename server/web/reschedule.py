"""The client's reschedule page: `/r/{token}`, a signed, expiring, single-use link (notifier/links.py).

GET lists open slots of the visit's booked length with its vet (or, with `?all=1`, any vet)
over the clinic's next days, grouped by day in the clinic's timezone; `?slot=...` and
`?cancel=1` show a confirm step. POST (CSRF token derived from the link, as the status
page's) books the slot, files a request for reception, or cancels, per the clinic's
`reschedule_mode`, in one transaction with the link's use and the confirmation text.
A link that cannot be used gets a friendly page with the clinic's phone, never a 500.
Every page is in the client's language (server/web/i18n.py), with a link to the other one.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from aiohttp import web

from notifier import formats
from notifier.links import (
    ExpiredLink,
    ForgedLink,
    LinkClaim,
    LinkError,
    UsedLink,
    check_link,
    consume_link,
    verify_token,
)
from notifier.messages import ClinicInfo, make_message
from notifier.outbox import NewText, enqueue
from notifier.slots import Slot, open_slots
from server.events import Event, apply_event
from server.hours import DEFAULT_HOURS as _DEFAULT_HOURS
from server.hours import parse_hours as _hours
from server.http import site
from server.keys import CLOCK
from server.store import Clinic, Tx
from server.texts import vet_title
from server.web import i18n
from server.web.board import short_vet_name
from server.web.i18n import Lang
from server.web.render import render

Mode = Literal["book", "request"]
STEP = timedelta(minutes=15)
MIN_NOTICE = timedelta(hours=1)
# A link is ~60 characters; anything much longer is not one of ours (and not worth an HMAC).
_MAX_TOKEN = 300
# Statuses of a visit that still holds its vet's time.
_BUSY = ("booked", "waiting", "in_consult")


# -- the clinic's settings -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RescheduleSettings:
    mode: Mode = "book"
    # weekday (0 = Monday) -> (open, close), clinic-local; a day not listed is closed.
    opening_hours: Mapping[int, tuple[time, time]] = field(default_factory=lambda: dict(_DEFAULT_HOURS))
    days: int = 7


def reschedule_settings(settings: Mapping[str, Any]) -> RescheduleSettings:
    """`reschedule_mode` ("book" | "request"), `opening_hours` ({"mon": ["08:00", "17:00"], ...;
    a day missing or null is closed}) and `reschedule_days` from the clinic's settings JSON.
    A malformed value falls back to its default (Mon-Fri 08:00-17:00, 7 days, book) rather than
    break the page."""
    mode: Mode = "request" if settings.get("reschedule_mode") == "request" else "book"
    hours = _hours(settings.get("opening_hours"))
    days = settings.get("reschedule_days")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 60:
        days = 7
    return RescheduleSettings(mode=mode, opening_hours=hours if hours is not None else dict(_DEFAULT_HOURS),
                              days=days)


def working_periods(s: RescheduleSettings, today: date, tz: tzinfo) -> list[tuple[datetime, datetime]]:
    """Opening hours as aware (start, end) periods, today and the `s.days - 1` days after."""
    out = []
    for i in range(s.days):
        d = today + timedelta(days=i)
        span = s.opening_hours.get(d.weekday())
        if span is not None:
            out.append((datetime.combine(d, span[0], tz), datetime.combine(d, span[1], tz)))
    return out


# -- reading the visit and the schedule ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VisitInfo:
    id: str
    status: str
    day: date
    vet: str
    vet_name: str
    pet: str
    type_name: str | None
    booked_min: float
    scheduled: datetime | None
    mobile: str | None
    sms_consent: bool
    language: str

    @property
    def length(self) -> timedelta:
        return timedelta(minutes=self.booked_min)


async def load_visit(q: Tx, visit_id: str) -> VisitInfo | None:
    b = await q.booking_detail(visit_id)
    if b is None:
        return None
    return VisitInfo(id=b.id, status=b.status, day=b.day, vet=b.vet, vet_name=b.vet_name, pet=b.pet or "your pet",
                     type_name=b.type_name, booked_min=b.booked_min, scheduled=b.scheduled, mobile=b.mobile,
                     sms_consent=b.sms_consent, language=b.language)


async def vet_names(q: Tx) -> dict[str, str]:
    return await q.vet_names()


async def busy_times(q: Tx, first: date, last: date, now: datetime,
                     ) -> dict[str, list[tuple[datetime, datetime]]]:
    """Each vet's taken time from `first` to `last`: booked and waiting visits at their booked
    times, blocked time imported from a calendar, and a vet's "away until" still in force."""
    out: dict[str, list[tuple[datetime, datetime]]] = {}
    for vet, start, minutes in await q.booked_times(first, last, _BUSY):
        out.setdefault(vet, []).append((start, start + timedelta(minutes=minutes)))
    for vet, start, end, _reason in await q.blocked_times(first, last):
        out.setdefault(vet, []).append((start, end))
    for vet, until in (await q.vets_away()).items():
        if until > now:
            out.setdefault(vet, []).append((now, until))
    return out


async def free_slots(conn: Tx, visit: VisitInfo, vets: Iterable[str], s: RescheduleSettings,
                     tz: tzinfo, now: datetime, *, with_busy: bool = True) -> list[Slot]:
    """Open slots of the visit's booked length with `vets`, earliest first."""
    today = now.astimezone(tz).date()
    periods = working_periods(s, today, tz)
    vets = list(vets)
    working = {v: periods for v in vets}
    busy = await busy_times(conn, today, today + timedelta(days=s.days), now) if with_busy else {}
    out: list[Slot] = []
    for v in vets:
        out += open_slots(working, busy, visit.length, now, vet=v, step=STEP, limit=10_000, min_notice=MIN_NOTICE)
    out.sort(key=lambda sl: (sl.start, sl.vet))
    return out


def one_per_time(slots: Iterable[Slot], prefer: str) -> list[Slot]:
    """"Any vet" means the client does not mind who: each time once, with their own vet when
    free (else the first free vet), so the list stays a thumb's length."""
    best: dict[datetime, Slot] = {}
    for sl in slots:
        held = best.get(sl.start)
        if held is None or (sl.vet == prefer and held.vet != prefer):
            best[sl.start] = sl
    return sorted(best.values(), key=lambda sl: sl.start)


async def sooner_today(conn: Tx, visit: VisitInfo, vets: Iterable[str], own: Sequence[Slot], s: RescheduleSettings,
                       tz: tzinfo, now: datetime) -> list[Slot]:
    """Times today with another vet, sooner than anything with their own vet (`own`, earliest
    first): a client who wants to come today is offered today first, not only later days."""
    today = now.astimezone(tz).date()
    first_own = own[0].start if own else None
    others = [v for v in vets if v != visit.vet]
    return [sl for sl in one_per_time(await free_slots(conn, visit, others, s, tz, now), visit.vet)
            if sl.start.astimezone(tz).date() == today and (first_own is None or sl.start < first_own)]


# -- the link and its pages ----------------------------------------------------------------------


class Refusal(Exception):
    """A friendly page instead of the one asked for: its status, and the catalogue key of its
    heading and explanation (`<key>.title`, `<key>.text`, in server/web/i18n.py)."""

    def __init__(self, status: int, key: str, **values: str) -> None:
        super().__init__(key)
        self.status, self.key, self.values = status, key, values


_LINK_PAGES: dict[type[LinkError], tuple[int, str]] = {
    UsedLink: (410, "used"),
    ExpiredLink: (410, "expired"),
    ForgedLink: (404, "forged"),
}


def _link_refusal(e: LinkError) -> Refusal:
    return Refusal(*_LINK_PAGES.get(type(e), _LINK_PAGES[ForgedLink]))


def _secret(request: web.Request) -> bytes:
    return site(request).config.secret.encode()


async def _claim(request: web.Request, conn: Any, *, consume: bool) -> LinkClaim:
    token = request.match_info["token"]
    now = request.app[CLOCK].now()
    if len(token) > _MAX_TOKEN:
        raise _link_refusal(ForgedLink("too long"))
    try:
        if consume:
            return await consume_link(conn, _secret(request), token, now)
        return await check_link(conn, _secret(request), token, now)
    except LinkError as e:
        raise _link_refusal(e) from e
    except ValueError as e:  # e.g. a non-ASCII "token": not one of ours
        raise _link_refusal(ForgedLink(str(e))) from e


async def _changeable(conn: Tx, claim: LinkClaim, tz: tzinfo, now: datetime) -> VisitInfo:
    visit = await load_visit(conn, claim.visit_id)
    if visit is None:
        raise Refusal(404, "no_visit")
    if visit.status not in ("booked", "waiting") or visit.day < now.astimezone(tz).date():
        said = visit.status if visit.status in ("cancelled", "done", "in_consult") else "other"
        raise Refusal(410, "fixed", pet=visit.pet, said=said)
    return visit


def csrf_token(secret: bytes, token: str) -> str:
    # No session: a MAC of the link itself is a token only a page from this link carries.
    return hmac.new(secret, b"reschedule:" + token.encode(), hashlib.sha256).hexdigest()[:32]


def _slot_param(s: Slot) -> str:
    return f"{s.start.astimezone(UTC):%Y%m%dT%H%MZ}.{s.vet}"


def _parse_slot(value: object, length: timedelta) -> Slot:
    if not isinstance(value, str) or len(value) > 250:
        raise Refusal(400, "bad_time")
    stamp, dot, vet = value.partition(".")
    try:
        start = datetime.strptime(stamp, "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
    except ValueError as e:
        raise Refusal(400, "bad_time") from e
    if not dot or not vet:
        raise Refusal(400, "bad_time")
    return Slot(vet, start, start + length)


def _when(t: datetime | None, tz: tzinfo) -> str:
    """In English: reception's inbox note says it this way whatever the client's language."""
    return i18n.when(t, tz, "en")


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html")


async def _clinic(request: web.Request) -> Clinic:
    return await site(request).store.clinic()


_EPOCH = datetime(1970, 1, 2, tzinfo=UTC)  # before any link's expiry: verify the signature only


def _signed_visit(request: web.Request) -> str | None:
    """The visit a link of ours names, even when it has expired or been used (so its page can
    still speak the client's language); None when it is not one of ours."""
    token = request.match_info["token"]
    if len(token) > _MAX_TOKEN:
        return None
    try:
        return verify_token(_secret(request), token, _EPOCH).visit_id
    except (LinkError, ValueError):
        return None


async def _language(request: web.Request, conn: Tx) -> Lang:
    """`?lang=`, else the language of the client the link was made for, else the browser's."""
    if (asked := i18n.asked(request)) is not None:
        return asked
    vid = _signed_visit(request)
    stored = None
    if vid is not None:
        stored = await conn.client_language(vid)
    return i18n.choose(request, stored)


def _href(request: web.Request, **params: str) -> str:
    """This link's path with `params`, keeping a `?lang=` the client chose with the switch link."""
    if (asked := i18n.asked(request)) is not None:
        params["lang"] = asked
    return i18n.with_query(request.path, params)


def _lang_ctx(request: web.Request, lang: Lang) -> dict[str, Any]:
    return i18n.page_ctx(request, lang) | {"href": lambda **params: _href(request, **params)}


async def _refusal_page(request: web.Request, r: Refusal) -> web.Response:
    clinic = await _clinic(request)
    async with site(request).store.read() as q:
        lang = await _language(request, q)
    values = dict(r.values)
    if "said" in values:
        values["said"] = i18n.plain(lang, f"said.{values['said']}")
    # Plain text, escaped by the template as before (refusals carry no markup of ours).
    return _html(render(request, "reschedule_error.html", clinic=clinic.name, phone=clinic.phone,
                        phone_label=phone_label(clinic), title=i18n.plain(lang, f"{r.key}.title", **values),
                        text=i18n.plain(lang, f"{r.key}.text", **values),
                        back=None if r.status != 409 else _href(request), **_lang_ctx(request, lang)), r.status)


def phone_label(clinic: Clinic) -> str | None:
    """The clinic's number as people write it locally ("(312) 555-0100"); the tel: link keeps E.164."""
    if not clinic.phone:
        return None
    return formats.national(clinic.phone, clinic.region)


def _base_ctx(request: web.Request, clinic: Clinic, visit: VisitInfo, vets: Mapping[str, str],
              lang: Lang) -> dict[str, Any]:
    tz = clinic.tz

    def in_sentence(name: str, vet_id: str) -> str:
        return formats.vet_es(name, vet_title(clinic, vet_id)) if lang == "es" else name

    return {"clinic": clinic.name, "phone": clinic.phone, "phone_label": phone_label(clinic), "v": visit,
            "vet_short": short_vet_name(visit.vet_name),
            # The vet inside a sentence: in Spanish with title and article ("con la Dra. Ruiz").
            "vet_in": in_sentence(short_vet_name(visit.vet_name), visit.vet),
            "vet_in_label": lambda vid: in_sentence(short_vet_name(vets.get(vid, vid)), vid),
            "current": i18n.when(visit.scheduled, tz, lang), "hm": lambda t: i18n.clock(t, tz, lang),
            "day_label": lambda t: i18n.day_label(t, tz, lang),
            "vet_label": lambda vid: short_vet_name(vets.get(vid, vid)), "path": request.path,
            "csrf": csrf_token(_secret(request), request.match_info["token"])} | _lang_ctx(request, lang)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refusals_as_pages(handler: Handler) -> Handler:
    """A `Refusal` raised anywhere in `handler` becomes its friendly page (in the client's language)."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refusal as r:
            return await _refusal_page(request, r)

    return wrapped


@_refusals_as_pages
async def reschedule_page(request: web.Request) -> web.StreamResponse:
    async with site(request).store.read() as conn:
        clinic = await _clinic(request)
        tz, now = clinic.tz, request.app[CLOCK].now()
        claim = await _claim(request, conn, consume=False)
        visit = await _changeable(conn, claim, tz, now)
        s = reschedule_settings(clinic.settings)
        vets = await vet_names(conn)
        lang = await _language(request, conn)
        any_vet = request.query.get("all") == "1"
        ctx = _base_ctx(request, clinic, visit, vets, lang) | {"mode": s.mode, "any_vet": any_vet, "days": s.days}
        if request.query.get("cancel") == "1":
            return _html(render(request, "reschedule_confirm.html", action="cancel", slot=None, **ctx))
        if "slot" in request.query:
            slot = await _checked_slot(conn, request.query["slot"], visit, vets, s, tz, now)
            return _html(render(request, "reschedule_confirm.html", action="book", slot=slot,
                                slot_param=_slot_param(slot), when=i18n.when(slot.start, tz, lang), **ctx))
        slots = await free_slots(conn, visit, vets if any_vet else [visit.vet], s, tz, now)
        if any_vet:
            slots = one_per_time(slots, visit.vet)
        else:
            slots = sorted(slots + await sooner_today(conn, visit, vets, slots, s, tz, now), key=lambda sl: sl.start)
        groups: dict[date, list[Slot]] = {}
        for sl in slots:
            groups.setdefault(sl.start.astimezone(tz).date(), []).append(sl)
        return _html(render(request, "reschedule.html", groups=list(groups.values()), slot_param=_slot_param, **ctx))


async def _checked_slot(conn: Tx, value: object, visit: VisitInfo, vets: Mapping[str, str],
                        s: RescheduleSettings, tz: tzinfo, now: datetime) -> Slot:
    """The slot a form names, if it is one we offer and still free: 400 if we never offered it,
    409 if someone took it meanwhile."""
    slot = _parse_slot(value, visit.length)
    if slot.vet not in vets:
        raise Refusal(400, "bad_time")
    if slot not in await free_slots(conn, visit, [slot.vet], s, tz, now, with_busy=False):
        raise Refusal(400, "not_offered")
    if slot not in await free_slots(conn, visit, [slot.vet], s, tz, now):
        raise Refusal(409, "taken")
    return slot


@_refusals_as_pages
async def reschedule_post(request: web.Request) -> web.StreamResponse:
    store = site(request).store
    clinic = await _clinic(request)
    tz, now = clinic.tz, request.app[CLOCK].now()
    # The link first, so a used or expired one says so even from a stale form.
    async with store.read() as q:
        await _claim(request, q, consume=False)
    form = await request.post()
    sent = form.get("csrf")
    want = csrf_token(_secret(request), request.match_info["token"])
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), want.encode()):
        raise Refusal(403, "stale")
    action = form.get("action")
    if action not in ("book", "cancel"):
        raise Refusal(400, "bad_action")
    s = reschedule_settings(clinic.settings)
    async with store.transaction() as conn:
        claim = await _claim(request, conn, consume=True)
        visit = await _changeable(conn, claim, tz, now)
        vets = await vet_names(conn)
        info = ClinicInfo(clinic.name, clinic.phone)
        if action == "cancel":
            await apply_event(conn, Event("cancel_visit", now, visit.id, {"link": claim.nonce}), "client", tz, now)
            outcome, slot = "cancelled", None
            body = _text("cancelled", visit, info, visit.scheduled, visit.vet_name, tz, vet_title(clinic, visit.vet))
        else:
            slot = await _checked_slot(conn, form.get("slot"), visit, vets, s, tz, now)
            when = _when(slot.start, tz)
            if s.mode == "book":
                await apply_event(conn, Event("reschedule", now, visit.id, {
                    "vet": slot.vet, "scheduled": slot.start.isoformat(), "link": claim.nonce}), "client", tz, now)
                outcome = "booked"
            else:
                note = (f"Asks to move {visit.pet}'s visit ({_when(visit.scheduled, tz)} with {visit.vet_name}) "
                        f"to {when} with {vets[slot.vet]}. Nothing is changed until you do it.")
                await apply_event(conn, Event("reschedule_request", now, visit.id, {
                    "vet": slot.vet, "scheduled": slot.start.isoformat(), "request": claim.nonce, "body": note,
                    "number": visit.mobile}), "client", tz, now)
                outcome = "requested"
            body = _text(outcome, visit, info, slot.start, vets[slot.vet], tz, vet_title(clinic, slot.vet))
        texted = False
        if visit.mobile and visit.sms_consent:
            msg = make_message(body)
            texted = bool(await enqueue(conn, [NewText(
                dedupe_key=f"reschedule-link:{claim.nonce}", to_number=visit.mobile, body=msg.body,
                kind=f"reschedule_{outcome}", visit_id=visit.id, segments=msg.segments)], now))
        await site(request).runtime.after_change(conn)
    async with store.read() as q:
        lang = await _language(request, q)
    # No switch link here: the link is used up, so it would only lead to the "already used" page.
    ctx = _base_ctx(request, clinic, visit, vets, lang) | {"switch_url": None}
    return _html(render(request, "reschedule_done.html", outcome=outcome, texted=texted,
                        when=i18n.when(slot.start, tz, lang) if slot else ctx["current"],
                        new_vet=ctx["vet_in_label"](slot.vet) if slot else None, **ctx))


# -- the confirmation text -----------------------------------------------------------------------

_TEXTS = {
    "en": {
        "booked": "{clinic}: {pet}'s visit is now {when} with {vet}.{call_change}",
        "requested": "{clinic}: we got your request to move {pet}'s visit to {when} with {vet}. "
                     "We'll confirm soon; until then your visit stays as booked.",
        "cancelled": "{clinic}: {pet}'s visit {when_on} is cancelled.{call_book}",
    },
    "es": {
        "booked": "{clinic}: la cita de {pet} queda para el {when} con {vet}.{call_change}",
        "requested": "{clinic}: recibimos su pedido de cambiar la cita de {pet} al {when} con {vet}. "
                     "Le vamos a confirmar pronto; hasta entonces su cita sigue igual.",
        "cancelled": "{clinic}: la cita de {pet} {when_on} fue cancelada.{call_book}",
    },
}
# Spanish day and month names without accents keep the text in GSM-7 (sabado, miercoles).
_ES_DAYS = ("lunes", "martes", "miercoles", "jueves", "viernes", "sabado", "domingo")
_ES_MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
              "noviembre", "diciembre")


def _text_when(t: datetime, tz: tzinfo, lang: str) -> str:
    local = t.astimezone(tz)
    if lang == "es":
        day = f"{_ES_DAYS[local.weekday()]} {local.day} de {_ES_MONTHS[local.month - 1]}"
        return f"{day} a las {formats.clock(t, tz, lang)}"
    return f"{local:%a} {local:%b} {local.day} at {formats.clock(t, tz, lang)}"


def _text(outcome: str, visit: VisitInfo, clinic: ClinicInfo, at: datetime | None, vet_name: str, tz: tzinfo,
          title: str | None = None) -> str:
    """The confirmation text in the client's language (English unless Spanish)."""
    lang = "es" if visit.language.lower().startswith("es") else "en"
    when = _text_when(at, tz, lang) if at else ("hoy" if lang == "es" else "today")
    phone = formats.national(clinic.phone) if clinic.phone else None
    if lang == "es":
        call_change = f" Para cambiarla, llame al {phone}." if phone else ""
        call_book = f" Para pedir otra, llame al {phone}." if phone else ""
        when_on = f"del {when}" if at else "de hoy"
    else:
        call_change = f" To change it, call {phone}." if phone else ""
        call_book = f" To book again, call {phone}." if phone else ""
        when_on = f"on {when}" if at else "today"
    vet = short_vet_name(vet_name)
    vet = formats.vet_es(vet, title) if lang == "es" else vet
    return _TEXTS[lang][outcome].format(clinic=clinic.name, pet=visit.pet, when=when, vet=vet,
                                        call_change=call_change, call_book=call_book, when_on=when_on)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/r/{token}", reschedule_page)
    app.router.add_post("/r/{token}", reschedule_post)
