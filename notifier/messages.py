"""The words of every text, in English and Spanish, and how many SMS segments they cost.

Templates keep to the GSM-7 alphabet (the Spanish ones avoid á/í/ó/ú where a natural
phrasing allows: one such letter turns the whole text into UCS-2 and its 160-character
segments into 70-character ones). Links are written out in full: shorteners look like
phishing and carriers filter them. Nothing here is promotional, ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Literal

from notifier import formats
from notifier.policy import TextCandidate, TextDecision, minutes_late

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 basic character set, and the extension table (each costs two septets).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXT = set("^{}\\[~]|€\f")

# Typography that sneaks in from names and copy-paste; plain lookalikes keep GSM-7.
_LOOKALIKES = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2018": "'", "\u2019": "'",
                             "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u00a0": " "})


@dataclass(frozen=True, slots=True)
class ClinicInfo:
    name: str
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    body: str
    encoding: Encoding
    segments: int


def encoding_of(text: str) -> Encoding:
    return "GSM-7" if all(ch in _GSM_BASIC or ch in _GSM_EXT for ch in text) else "UCS-2"


def segment_count(text: str) -> int:
    """SMS segments: GSM-7 160 septets alone, 153 per part; UCS-2 70 units alone, 67 per part.

    Parts never split an escape pair (GSM-7) or a surrogate pair (UCS-2), as handsets and
    Twilio do, so a long text is packed greedily rather than by plain division.
    """
    if not text:
        return 1
    if encoding_of(text) == "GSM-7":
        units = [2 if ch in _GSM_EXT else 1 for ch in text]
        single, part = 160, 153
    else:
        units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, part = 70, 67
    if sum(units) <= single:
        return 1
    parts, used = 1, 0
    for u in units:
        if used + u > part:
            parts, used = parts + 1, 0
        used += u
    return parts


def make_message(body: str) -> Message:
    body = body.translate(_LOOKALIKES)
    return Message(body=body, encoding=encoding_of(body), segments=segment_count(body))


def _lang(language: str) -> str:
    return "es" if language.lower().startswith("es") else "en"


def _clock(t: datetime, tz: tzinfo, lang: str) -> str:
    return formats.clock(t, tz, lang)


def _floor5(t: datetime) -> datetime:
    t = t.replace(second=0, microsecond=0)
    return t - timedelta(minutes=t.minute % 5)


def _ceil5(t: datetime) -> datetime:
    f = _floor5(t)
    return f if f == t else f + timedelta(minutes=5)


_REASON = {
    "en": {"emergency": "{vet} is with an emergency", "running_late": "{vet} is running behind",
           "overrun": "{vet}'s earlier visits are running long", None: "{vet} is running behind"},
    "es": {"emergency": "{vet} atiende una emergencia", "running_late": "{vet} va con retraso",
           "overrun": "las consultas anteriores {de_vet} se alargaron", None: "{vet} va con retraso"},
}


def _vet(c: TextCandidate, lang: str) -> str:
    """The vet as the sentence names them: "Dr. Ana Ruiz"; in Spanish with title and article."""
    return formats.vet_es(c.vet_name, c.vet_title) if lang == "es" else c.vet_name


def _reason(c: TextCandidate, lang: str) -> str:
    vet = _vet(c, lang)
    return _REASON[lang].get(c.reason, _REASON[lang][None]).format(vet=vet, de_vet=formats.de_es(vet))


def _offer(lang: str, link: str | None, first: bool) -> str:
    # The space before the period keeps handsets from taking "." into the link.
    if lang == "es":
        s = ("Responda 1 para mantener su turno, 2 para cambiar la cita, o toque " + link + " ."
             if link else "Responda 1 para mantener su turno o 2 para cambiar la cita.")
        return s + (" STOP para no recibir mensajes." if first else "")
    s = (f"Reply 1 to keep your place, 2 to reschedule, or tap {link} ."
         if link else "Reply 1 to keep your place or 2 to reschedule.")
    return s + (" STOP to opt out." if first else "")


def _see_them(c: TextCandidate, lang: str, pet: str) -> str:
    sex = (c.pet_sex or "").lower()
    if lang == "es":
        if sex == "female":
            return "La atenderemos lo antes posible."
        if sex == "male":
            return "Lo atenderemos lo antes posible."
        return f"Atenderemos a {pet} lo antes posible."
    obj = {"female": "her", "male": "him"}.get(sex, pet)
    return f"We'll see {obj} as soon as we can."


def delay_message(d: TextDecision, clinic: ClinicInfo, link: str | None = None) -> Message:
    """The text for a policy decision, in the client's language."""
    c = d.candidate
    lang = _lang(c.language)
    es = lang == "es"
    pet = c.pet_name or ("su mascota" if es else "your pet")
    pet_s = f"la consulta de {pet}" if es else (f"{pet}'s" if c.pet_name else "your pet's")
    reason = _reason(c, lang)
    frm, to = _clock(_floor5(c.p10), c.tz, lang), _clock(_ceil5(c.p90), c.tz, lang)
    first = d.seq == 1
    offer = _offer(lang, link, first)
    late = minutes_late(c)
    # Not yet arrived: come by the optimistic end, a little early for the check-in,
    # and never earlier than the booked time.
    by_t = _floor5(c.p10 - timedelta(minutes=5))
    if c.scheduled is not None:
        by_t = max(by_t, c.scheduled)
    by = _clock(by_t, c.tz, lang)
    booked = _clock(c.scheduled, c.tz, lang) if c.scheduled is not None else None

    if es:
        visit = f"{pet_s} de las {booked}" if booked else pet_s
        visit = visit[0].upper() + visit[1:]
        if late is None:
            when = f"probablemente empiece entre las {frm} y las {to}, después de lo previsto"
        elif late[0] == 0 and d.kind == "earlier":
            when = f"puede empezar cerca de la hora prevista ({frm}-{to})"
        else:
            when = f"probablemente empiece con unos {late[0]}-{late[1]} min de retraso ({frm}-{to})"
        if d.kind == "delay":
            if c.arrived is not None:
                body = f"{clinic.name}: lo sentimos, {reason}. {visit} {when}. {_see_them(c, lang, pet)}"
            else:
                body = f"{clinic.name}: {reason}, por eso {visit[0].lower() + visit[1:]} {when}. " \
                       f"Puede venir después, hasta las {by}."
        elif d.kind == "later":
            tail = "Lo sentimos." if c.arrived is not None else f"Puede venir hasta las {by}."
            body = f"{clinic.name}, novedad: {visit[0].lower() + visit[1:]} ahora {when}. {tail}"
        else:
            body = f"{clinic.name}, buenas noticias: {_vet(c, lang)} va recuperando el retraso. " \
                   f"{visit} ahora {when}. Por favor, llegue antes de las {by}."
        return make_message(f"{body} {offer}")

    visit = f"{pet_s} {booked} visit" if booked else f"{pet_s} visit"
    visit_cap = visit[0].upper() + visit[1:]
    if late is None:
        when = f"will likely start around {frm}-{to}, later than we first said"
    elif late[0] == 0 and d.kind == "earlier":
        when = f"may start close to the planned time ({frm}-{to})"
    else:
        when = f"will likely start about {late[0]}-{late[1]} min later than planned ({frm}-{to})"
    if d.kind == "delay":
        if c.arrived is not None:
            body = f"{clinic.name}: we're sorry, {reason}. {visit_cap} {when}. {_see_them(c, lang, pet)}"
        else:
            body = f"{clinic.name}: {reason}, so {visit} {when}. You can come later, by {by}."
    elif d.kind == "later":
        tail = "Sorry for the longer wait." if c.arrived is not None else f"You can come by {by}."
        body = f"{clinic.name} update: {visit} now {when.replace('will likely', 'looks likely to')}. {tail}"
    else:
        body = f"{clinic.name} update: good news, {c.vet_name} is catching up. " \
               f"{visit_cap} {when.replace('will likely', 'may now')}. Please come by {by}."
    return make_message(f"{body} {offer}")


def _join(items: list[str], lang: str) -> str:
    word = " y " if lang == "es" else " and "
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + word + items[-1]


def _pet_sentence(d: TextDecision, lang: str) -> str:
    """One pet's line of a household text, kept short (one text carries several): the visit,
    how late it will likely start, and (not yet arrived) by when to come."""
    c = d.candidate
    es = lang == "es"
    pet = c.pet_name or ("su mascota" if es else "your pet")
    frm, to = _clock(_floor5(c.p10), c.tz, lang), _clock(_ceil5(c.p90), c.tz, lang)
    late = minutes_late(c)
    by_t = _floor5(c.p10 - timedelta(minutes=5))
    if c.scheduled is not None:
        by_t = max(by_t, c.scheduled)
    by = _clock(by_t, c.tz, lang)
    booked = _clock(c.scheduled, c.tz, lang) if c.scheduled is not None else None
    if es:
        visit = f"{pet}, cita de las {booked}" if booked else pet
        if late is None:
            when = f"probablemente entre las {frm} y las {to}"
        elif late[0] == 0 and d.kind == "earlier":
            when = f"cerca de la hora prevista ({frm}-{to})"
        else:
            when = f"unos {late[0]}-{late[1]} min de retraso ({frm}-{to})"
        tail = "" if c.arrived is not None else (
            f"; llegue antes de las {by}" if d.kind == "earlier" else f"; puede venir hasta las {by}")
        return f"{visit}: {'ahora ' if d.kind != 'delay' else ''}{when}{tail}."
    visit = f"{pet}'s {booked} visit" if booked else f"{pet}'s visit"
    if late is None:
        when = f"likely {frm}-{to}"
    elif late[0] == 0 and d.kind == "earlier":
        when = f"close to the planned time ({frm}-{to})"
    else:
        when = f"about {late[0]}-{late[1]} min late ({frm}-{to})"
    tail = "" if c.arrived is not None else (
        f", please come by {by}" if d.kind == "earlier" else f", you can come by {by}")
    return f"{visit}: {'now ' if d.kind != 'delay' else ''}{when}{tail}."


def household_message(ds: list[TextDecision], clinic: ClinicInfo,
                      links: list[str | None] | None = None) -> Message:
    """One text for every visit a phone is owed a text about in one round (a household's pets),
    naming each pet; a single decision reads as `delay_message`. `links[i]` is the reschedule
    link for `ds[i]` (all of them or none are offered, each beside its pet's name)."""
    links = links if links is not None else [None] * len(ds)
    if len(ds) == 1:
        return delay_message(ds[0], clinic, links[0])
    lang = _lang(ds[0].candidate.language)
    es = lang == "es"
    reasons: list[str] = []
    for d in ds:
        r = _reason(d.candidate, lang)
        if r not in reasons:
            reasons.append(r)
    good_news = all(d.kind == "earlier" for d in ds)
    if good_news:
        vets = _join(list(dict.fromkeys(_vet(d.candidate, lang) for d in ds)), lang)
        head = (f"{clinic.name}, buenas noticias: {vets} recuperan el retraso." if es and " y " in vets else
                f"{clinic.name}, buenas noticias: {vets} va recuperando el retraso." if es else
                f"{clinic.name} update: good news, {vets} {'are' if ' and ' in vets else 'is'} catching up.")
    else:
        head = (f"{clinic.name}: lo sentimos, {_join(reasons, lang)}." if es
                else f"{clinic.name}: we're sorry, {_join(reasons, lang)}.")
    lines = [_pet_sentence(d, lang) for d in ds]
    waiting = any(d.candidate.arrived is not None for d in ds) and not good_news
    see = (" Los atenderemos lo antes posible." if es else " We'll see them as soon as we can.") if waiting else ""
    first = any(d.seq == 1 for d in ds)
    pets = [d.candidate.pet_name or ("su mascota" if es else "your pet") for d in ds]
    if all(links):
        taps = " , ".join(f"{p} {link}" for p, link in zip(pets, links, strict=True))
        offer = (f"Responda 1 para mantener sus turnos, 2 para cambiar una cita, o toque: {taps} ." if es
                 else f"Reply 1 to keep your places, 2 to reschedule, or tap: {taps} .")
    else:
        offer = ("Responda 1 para mantener sus turnos o 2 para cambiar una cita." if es
                 else "Reply 1 to keep your places or 2 to reschedule.")
    if first:
        offer += " STOP para no recibir mensajes." if es else " STOP to opt out."
    return make_message(f"{head} {' '.join(lines)}{see} {offer}")


ReplyText = Literal["keep", "reschedule", "reschedule_each", "no_visit", "optout", "optin", "help", "other"]

_REPLIES: dict[str, dict[str, str]] = {
    "en": {
        "keep": "{clinic}: thanks, we'll keep your place. We'll text you if anything changes.",
        "reschedule": "{clinic}: choose a new time here: {link} . Your visit stays booked until you do.",
        "reschedule_each": "{clinic}: choose a new time for each here: {link} . Each visit stays booked until you do.",
        "no_visit": "{clinic}: we couldn't find a visit to move.{call}",
        "optout": "{clinic}: you won't get any more texts from us. Reply START to turn them back on.",
        "optin": "{clinic}: texts are back on. Reply STOP to stop them.",
        "help": "{clinic}: texts about your visit and wait time.{call} Reply STOP to stop texts.",
        "other": "{clinic}: thanks, a person at reception will answer soon.{call_urgent}",
    },
    "es": {
        "keep": "{clinic}: gracias, mantenemos su turno. Le escribiremos si algo cambia.",
        "reschedule": "{clinic}: elija otra hora en {link} . Su cita sigue en pie hasta que elija.",
        "reschedule_each": "{clinic}: elija otra hora para cada uno en {link} . Cada cita sigue en pie hasta que "
                           "elija.",
        "no_visit": "{clinic}: no encontramos una cita para cambiar.{call}",
        "optout": "{clinic}: ya no le enviaremos mensajes. Responda START para volver a recibirlos.",
        "optin": "{clinic}: mensajes activados de nuevo. Responda STOP para dejar de recibirlos.",
        "help": "{clinic}: mensajes sobre su cita y la espera.{call} Responda STOP para dejar de recibirlos.",
        "other": "{clinic}: gracias, una persona del equipo le va a responder pronto.{call_urgent}",
    },
}


def reply_message(kind: ReplyText, language: str, clinic: ClinicInfo, link: str | None = None,
                  each: Sequence[tuple[str, str]] = ()) -> Message:
    """The answer to a client's reply (confirmations, help, the reschedule link; for a
    household whose text named several pets, `each` pet's own link: "Max: URL , Bella: URL")."""
    lang = _lang(language)
    if kind == "reschedule" and len(each) > 1:
        link = " , ".join(f"{pet}: {url}" for pet, url in each)
        kind = "reschedule_each"
    if kind == "reschedule" and not link:
        kind = "no_visit"
    if clinic.phone:
        phone = formats.national(clinic.phone)
        call = f" Llame al {phone}." if lang == "es" else f" Call us at {phone}."
        urgent = (f" Si es urgente, llame al {phone}." if lang == "es"
                  else f" If it's urgent, call {phone}.")
    else:
        call = urgent = ""
    return make_message(_REPLIES[lang][kind].format(clinic=clinic.name, link=link, call=call,
                                                    call_urgent=urgent))
