"""The client pages' words in English and Spanish: the reschedule page (/r/{token}) and the
status page (/s/{token}).

Which language: `?lang=en|es` when given (the pages' own "English" / "Español" switch), else
the client's stored `clients.language` (Spanish when it starts with "es"), else, when the link
names no client we know (a forged link), the first of en/es in the browser's Accept-Language,
else English. One template per page looks its strings up here; a string may hold a little
markup of ours (`<strong>`), and whatever is put into it is escaped.

Unlike the texts (notifier/messages.py), a page is not held to GSM-7: Spanish day and month
names keep their accents here (miércoles, sábado).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web
from markupsafe import Markup

from notifier import formats
from server.web import render

Lang = Literal["en", "es"]
LANGS: tuple[Lang, ...] = ("en", "es")
# Each language's name in itself, for the switch link.
NAMES: dict[Lang, str] = {"en": "English", "es": "Español"}

STRINGS: dict[Lang, dict[str, str]] = {
    "en": {
        "skip": "Skip to content",
        "questions_call": 'Questions? Call us at <a href="tel:{phone}">{label}</a>.',
        "today": "today",
        # reschedule.html
        "change_title": "Change {pet}'s visit",
        "now_with": "Now: <strong>{current}</strong> with {vet}",
        "note_request": "Choose the time you'd like. Reception will confirm it; until then your visit stays as booked.",
        "note_book": "Tap a new time. You'll confirm it on the next screen.",
        "which_vet": "Which vet",
        "only_vet": "Only {vet}",
        "any_vet": "Any vet",
        "no_times": "No open times in the next {days} days",
        "no_times_with": "No open times in the next {days} days with {vet}",
        "see_any_vet": "See times with any vet",
        "or_call": 'Or call us at <a href="tel:{phone}">{label}</a> and we\'ll find a time.',
        "n_times_1": "{n} time",
        "n_times": "{n} times",
        "cancel_instead": "Cancel this visit instead",
        # reschedule_confirm.html
        "confirm_title": "Confirm",
        "cancel_q": "Cancel {pet}'s visit?",
        "when_with": "<strong>{current}</strong> with {vet}",
        "yes_cancel": "Yes, cancel the visit",
        "keep_it": "No, keep it",
        "ask_q": "Ask for this time?",
        "move_q": "Move {pet}'s visit?",
        "from": "From {current} with {vet}",
        "to": "to <strong>{when}</strong><br>with {vet}",
        "send_request": "Send my request",
        "book_time": "Book this time",
        "choose_another": "Choose another time",
        # reschedule_done.html
        "done_title": "Done",
        "booked_h": "You're booked",
        "booked_p": "{pet}'s visit is now <strong>{when}</strong> with {vet}.",
        "requested_h": "Request sent",
        "requested_p": "We'll confirm {when} with {vet} soon. Until then {pet}'s visit stays {current}.",
        "cancelled_h": "Visit cancelled",
        "cancelled_p": "{pet}'s visit ({current}) is cancelled.",
        "texted": "We've sent you a text to confirm.",
        # reschedule_error.html and the refusals behind it
        "see_open_times": "See the open times",
        "used.title": "This link has already been used",
        "used.text": "Each reschedule link works once, and this one has done its job. "
                     "If you need another change, please call us.",
        "expired.title": "This link has expired",
        "expired.text": "Reschedule links only work for a limited time. Please call us and we'll find you a time.",
        "forged.title": "This link isn't valid",
        "forged.text": "It may have been cut short when it was copied. "
                       "Please open it straight from our text, or call us.",
        "no_visit.title": "We couldn't find this visit",
        "no_visit.text": "It may have been removed from our schedule. Please call us.",
        "fixed.title": "This visit can't be changed online",
        "fixed.text": "{pet}'s visit {said}. If you need a new appointment, please call us.",
        "said.cancelled": "has been cancelled",
        "said.done": "is over",
        "said.in_consult": "has started",
        "said.other": "has passed",
        "bad_time.title": "We couldn't read that time",
        "bad_time.text": "Please go back and choose a time from the list.",
        "not_offered.title": "That isn't a time we can offer",
        "not_offered.text": "Please go back and choose one of the times on the list.",
        "taken.title": "Sorry, that time was just taken",
        "taken.text": "Someone booked it a moment ago. Your visit hasn't changed: please choose another time.",
        "stale.title": "Please try again",
        "stale.text": "This form was out of date. Open the link again and choose a time.",
        "bad_action.title": "We couldn't tell what you chose",
        "bad_action.text": "Please go back and choose a time, or cancel.",
        # status.html, _status.html
        "connecting": "Connecting…",
        "live_ok": "Live",
        "live_lost": "Reconnecting…",
        "with_vet": "with {vet}",
        "place_next": "You're <strong>next</strong> in line",
        "place_n": "You're <strong>{n}</strong> in line",
        "expected_called": "Expected to be called",
        "around": "around {t}",
        "most_likely": "most likely around {t}",
        "car_ok_text": "Thanks — we'll text you when it's your turn.",
        "car_ok_page": "Thanks — keep this page open: it will show when it's your turn.",
        "car_button": "I'm waiting in my car — text me when it's my turn",
        "booked_for": "Booked for {t}",
        "expected_seen": "Expected to be seen",
        "check_in": "Please check in at the kiosk or the desk when you arrive.",
        "your_turn": "It's your turn — please come in.",
        "all_done": "All done. Thank you for visiting!",
        "missed": "We've marked this visit as missed. Please call us if you're on your way.",
        "visit_is": "This visit is {status}.",
        "reschedule_by_text": "Need another time, or can't come? Text 2 to {number} from your phone and we'll "
                              "text you a link to change or cancel.",
        "reschedule_by_reply": "Need another time, or can't come? Reply 2 to one of our texts and we'll text you "
                               "a link to change or cancel, or call us.",
        "reschedule_call": "Need another time, or can't come? Please call us or ask at the front desk.",
        "updated": "Updated {t} · this page updates by itself",
        "car_thanks": "Thanks — we'll let you know when it's your turn.",
        "car_refused": "Refused: reload the page and try again.",
        "status_invalid": "This link is not valid (or the visit is from another day).",
        "link_invalid": "This link is not valid.",
    },
    "es": {
        "skip": "Saltar al contenido",
        "questions_call": '¿Preguntas? Llámenos al <a href="tel:{phone}">{label}</a>.',
        "today": "hoy",
        "change_title": "Cambiar la cita de {pet}",
        "now_with": "Ahora: <strong>{current}</strong> con {vet}",
        "note_request": "Elija la hora que prefiera. Recepción se la confirmará; hasta entonces su cita sigue igual.",
        "note_book": "Toque una hora nueva. La confirmará en la siguiente pantalla.",
        "which_vet": "Con qué veterinario",
        "only_vet": "Solo {vet}",
        "any_vet": "Cualquier veterinario",
        "no_times": "No hay horarios libres en los próximos {days} días",
        "no_times_with": "No hay horarios libres con {vet} en los próximos {days} días",
        "see_any_vet": "Ver horarios con cualquier veterinario",
        "or_call": 'O llámenos al <a href="tel:{phone}">{label}</a> y le buscamos una hora.',
        "n_times_1": "{n} horario",
        "n_times": "{n} horarios",
        "cancel_instead": "Prefiero cancelar esta cita",
        "confirm_title": "Confirmar",
        "cancel_q": "¿Cancelar la cita de {pet}?",
        "when_with": "<strong>{current}</strong> con {vet}",
        "yes_cancel": "Sí, cancelar la cita",
        "keep_it": "No, mantenerla",
        "ask_q": "¿Pedir esta hora?",
        "move_q": "¿Cambiar la cita de {pet}?",
        "from": "Ahora: {current} con {vet}",
        "to": "Nueva hora: <strong>{when}</strong><br>con {vet}",
        "send_request": "Enviar mi pedido",
        "book_time": "Reservar esta hora",
        "choose_another": "Elegir otra hora",
        "done_title": "Listo",
        "booked_h": "Cita reservada",
        "booked_p": "La cita de {pet} queda para el <strong>{when}</strong> con {vet}.",
        "requested_h": "Pedido enviado",
        "requested_p": "Pronto le confirmaremos el {when} con {vet}. Hasta entonces, la cita de {pet} "
                       "sigue igual ({current}).",
        "cancelled_h": "Cita cancelada",
        "cancelled_p": "La cita de {pet} ({current}) quedó cancelada.",
        "texted": "Le enviamos un mensaje de texto para confirmarlo.",
        "see_open_times": "Ver los horarios libres",
        "used.title": "Este enlace ya se usó",
        "used.text": "Cada enlace para cambiar la cita funciona una sola vez, y este ya se usó. "
                     "Si necesita otro cambio, llámenos.",
        "expired.title": "Este enlace venció",
        "expired.text": "Los enlaces para cambiar la cita solo funcionan por un tiempo. "
                        "Llámenos y le buscamos una hora.",
        "forged.title": "Este enlace no es válido",
        "forged.text": "Puede que se haya cortado al copiarlo. Ábralo directamente desde nuestro mensaje, "
                       "o llámenos.",
        "no_visit.title": "No encontramos esta cita",
        "no_visit.text": "Puede que se haya quitado de nuestra agenda. Llámenos, por favor.",
        "fixed.title": "Esta cita no se puede cambiar en línea",
        "fixed.text": "La cita de {pet} {said}. Si necesita una cita nueva, llámenos.",
        "said.cancelled": "fue cancelada",
        "said.done": "ya terminó",
        "said.in_consult": "ya empezó",
        "said.other": "ya pasó",
        "bad_time.title": "No pudimos leer esa hora",
        "bad_time.text": "Vuelva atrás y elija un horario de la lista.",
        "not_offered.title": "Ese horario no está disponible",
        "not_offered.text": "Vuelva atrás y elija uno de los horarios de la lista.",
        "taken.title": "Lo sentimos, alguien acaba de reservar esa hora",
        "taken.text": "Alguien la reservó hace un momento. Su cita no cambió: elija otra hora, por favor.",
        "stale.title": "Inténtelo de nuevo",
        "stale.text": "Este formulario estaba desactualizado. Abra el enlace otra vez y elija una hora.",
        "bad_action.title": "No entendimos qué eligió",
        "bad_action.text": "Vuelva atrás y elija una hora, o cancele la cita.",
        "connecting": "Conectando…",
        "live_ok": "En vivo",
        "live_lost": "Reconectando…",
        "with_vet": "con {vet}",
        "place_next": "Su turno es el <strong>próximo</strong>",
        "place_n": "Su turno: <strong>{n}</strong> en la fila",
        "expected_called": "Le llamaremos",
        "around": "hacia las {t}",
        "most_likely": "lo más probable, hacia las {t}",
        "car_ok_text": "Gracias: le enviaremos un mensaje cuando sea su turno.",
        "car_ok_page": "Gracias: deje esta página abierta; aquí verá cuando sea su turno.",
        "car_button": "Estoy esperando en mi auto: avísenme por mensaje cuando sea mi turno",
        "booked_for": "Cita: {t}",
        "expected_seen": "Le atenderemos",
        "check_in": "Cuando llegue, regístrese en el quiosco o en recepción.",
        "your_turn": "Es su turno: pase, por favor.",
        "all_done": "Listo. ¡Gracias por su visita!",
        "missed": "Marcamos esta cita como perdida. Si viene en camino, llámenos.",
        "visit_is": "Estado de la cita: {status}.",
        "reschedule_by_text": "¿Necesita otra hora o no puede venir? Envíe 2 por mensaje al {number} desde su "
                              "teléfono y le enviaremos un enlace para cambiar o cancelar la cita.",
        "reschedule_by_reply": "¿Necesita otra hora o no puede venir? Responda 2 a uno de nuestros mensajes y le "
                               "enviaremos un enlace para cambiar o cancelar la cita, o llámenos.",
        "reschedule_call": "¿Necesita otra hora o no puede venir? Llámenos o pase por recepción.",
        "updated": "Actualizado: {t} · esta página se actualiza sola",
        "car_thanks": "Gracias: le avisaremos cuando sea su turno.",
        "car_refused": "No se pudo: recargue la página e inténtelo de nuevo.",
        "status_invalid": "Este enlace no es válido (o la cita es de otro día).",
        "link_invalid": "Este enlace no es válido.",
    },
}

_ES_DAYS = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
_ES_MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
              "noviembre", "diciembre")


def lang_of(stored: str | None) -> Lang:
    """A stored `clients.language` as a page language: Spanish when it starts with "es"."""
    return "es" if (stored or "").strip().lower().startswith("es") else "en"


def asked(request: web.Request) -> Lang | None:
    """The language the page's switch link (`?lang=`) asks for, if any."""
    value = request.query.get("lang", "").strip().lower()
    return value if value in LANGS else None


def accepted(header: str | None) -> Lang | None:
    """The browser's first preference between English and Spanish (Accept-Language), if any."""
    best: tuple[float, int, Lang] | None = None
    for i, part in enumerate((header or "")[:500].split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGS:
            continue
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        if best is None or q > best[0]:
            best = (q, i, primary)
    return best[2] if best else None


def choose(request: web.Request, stored: str | None) -> Lang:
    """The page's language: `?lang=`, else the client's stored one, else (no client known)
    the browser's Accept-Language between en/es, else English."""
    return asked(request) or (lang_of(stored) if stored else None) or accepted(
        request.headers.get("Accept-Language")) or "en"


def text(lang: Lang, key: str, /, **values: Any) -> Markup:
    """A catalogue string with `values` filled in, escaped (the string's own markup is kept)."""
    return Markup(STRINGS[lang][key]).format(**values)


def plain(lang: Lang, key: str, /, **values: Any) -> str:
    """A catalogue string without markup, as plain text (the template escapes it)."""
    return STRINGS[lang][key].format(**values)


def clock(t: datetime | None, tz: tzinfo, lang: Lang) -> str:
    """A time of day: "10:05 AM" or "10:05" (24-hour), as the texts say it (notifier.formats)."""
    if t is None:
        return ""
    return formats.clock(t, tz, lang)


def clock5(t: datetime, tz: tzinfo, lang: Lang, up: bool = False) -> str:
    """A range end rounded outward to 5 minutes (as render.hm5), in `lang`."""
    return clock(render.round5(t, tz, up), tz, lang)


def day_label(t: datetime, tz: tzinfo, lang: Lang) -> str:
    """ "Tuesday, March 3" / "martes 3 de marzo", in the clinic's timezone."""
    local = t.astimezone(tz)
    if lang == "es":
        return f"{_ES_DAYS[local.weekday()]} {local.day} de {_ES_MONTHS[local.month - 1]}"
    return f"{local:%A}, {local:%B} {local.day}"


def when(t: datetime | None, tz: tzinfo, lang: Lang) -> str:
    """ "Tuesday, March 3 at 10:30am" / "martes 3 de marzo, 10:30"; "today" when unscheduled."""
    if t is None:
        return STRINGS[lang]["today"]
    if lang == "es":
        return f"{day_label(t, tz, lang)}, {clock(t, tz, lang)}"
    return f"{day_label(t, tz, lang)} at {clock(t, tz, lang)}"


def ordinal(n: int, lang: Lang) -> str:
    if lang == "es":
        return f"{n}.º"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def with_query(path: str, params: Mapping[str, str]) -> str:
    """`path?k=v&...` (values quoted as Jinja's urlencode filter does), or `path` alone."""
    if not params:
        return path
    return path + "?" + "&".join(f"{k}={quote(v, safe='/')}" for k, v in params.items())


def page_ctx(request: web.Request, lang: Lang, *, switch_query: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What every client page's template needs for its language: `lang`, `t(key, **values)`,
    and the switch link to the other language (same path and query, `lang=` flipped)."""
    other: Lang = "en" if lang == "es" else "es"
    query = dict(request.query if switch_query is None else switch_query)
    query.pop("lang", None)
    query["lang"] = other
    t: Callable[..., Markup] = lambda key, **values: text(lang, key, **values)  # noqa: E731
    return {"lang": lang, "t": t, "switch_lang": other, "switch_name": NAMES[other],
            "switch_url": with_query(request.path, query)}
