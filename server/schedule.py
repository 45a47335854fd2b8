"""Importing a day's schedule: validated, then upserted by external id (a PMS may re-push)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta, tzinfo
from typing import Any

from server.errors import BadRequest, TooLarge
from server.phones import PhoneError, normalise
from server.store.interface import BookedVisit, Tx, VetBlock
from server.timeutil import parse_time

SEXES = {"f": "female", "female": "female", "m": "male", "male": "male", "u": "unknown", "unknown": "unknown"}
LANGUAGES = ("en", "es")


def normalise_mobile(raw: str, region: str, field: str = "mobile") -> str:
    """E.164 for a number typed any usual way; BadRequest naming the field when it is no number."""
    try:
        return normalise(raw, region)
    except PhoneError as e:
        raise BadRequest(f"{field}: {e}", field) from e


def _list(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise BadRequest(f"{key}: expected a list of objects", key)
    return value


def _str(item: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = item.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise BadRequest(f"{where}.{key}: expected a non-empty string", f"{where}.{key}")
    return value.strip()


def _req(item: dict[str, Any], key: str, where: str) -> str:
    """A required string field (BadRequest naming it otherwise)."""
    value = _str(item, key, where)
    assert value is not None
    return value


def _minutes(item: dict[str, Any], key: str, where: str, *, required: bool = True) -> float | None:
    value = item.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 24 * 60:
        raise BadRequest(f"{where}.{key}: expected minutes between 0 and 1440", f"{where}.{key}")
    return float(value)


async def import_schedule(
    tx: Tx, doc: object, tz: tzinfo, region: str, *, max_per_day: int | None = None
) -> dict[str, int]:
    """Upsert vets, types, clients, pets, appointments and vets' blocked time; return how many
    of each were given.

    Runs inside the caller's transaction, so a document with one bad row changes nothing: the
    JSON API is all or nothing, its 400 naming the field (`clients[39].mobile`). Files are
    checked row by row before they get here (server/importers.py).
    """
    if not isinstance(doc, dict):
        raise BadRequest("body: expected a JSON object", "body")
    counts: dict[str, int] = {}
    for i, v in enumerate(_list(doc, "vets")):
        where = f"vets[{i}]"
        await tx.save_vet(_req(v, "id", where), _req(v, "name", where))
    counts["vets"] = len(doc.get("vets", []))
    for i, t in enumerate(_list(doc, "appointment_types")):
        where = f"appointment_types[{i}]"
        booked = _minutes(t, "booked_min", where)
        assert booked is not None
        await tx.save_appointment_type(_req(t, "id", where), _req(t, "name", where), booked)
    counts["appointment_types"] = len(doc.get("appointment_types", []))
    for i, c in enumerate(_list(doc, "clients")):
        where = f"clients[{i}]"
        mobile = _str(c, "mobile", where, required=False)
        e164 = normalise_mobile(mobile, region, f"{where}.mobile") if mobile else None
        consent = c.get("sms_consent", False)
        if not isinstance(consent, bool):
            raise BadRequest(f"{where}.sms_consent: expected true or false", f"{where}.sms_consent")
        lang = c.get("language", "en")
        if lang not in LANGUAGES:
            raise BadRequest(f"{where}.language: expected one of {LANGUAGES}", f"{where}.language")
        notes = c.get("notes", "")
        if not isinstance(notes, str):
            raise BadRequest(f"{where}.notes: expected a string", f"{where}.notes")
        await tx.save_client(_req(c, "id", where), _req(c, "name", where), e164, consent, lang, notes)
    counts["clients"] = len(doc.get("clients", []))
    for i, p in enumerate(_list(doc, "pets")):
        where = f"pets[{i}]"
        sex_raw = p.get("sex") or "unknown"
        sex = SEXES.get(str(sex_raw).strip().lower())
        if sex is None:
            raise BadRequest(f"{where}.sex: expected female, male or unknown", f"{where}.sex")
        client = _str(p, "client", where, required=False)
        if client is not None and not await tx.has_client(client):
            raise BadRequest(f"{where}.client: unknown client {client!r}", f"{where}.client")
        await tx.save_pet(_req(p, "id", where), client, _req(p, "name", where),
                          _str(p, "species", where, required=False), sex)
    counts["pets"] = len(doc.get("pets", []))
    appointments = _list(doc, "appointments")
    if max_per_day is not None and len(appointments) > max_per_day:
        # Refused before a row is read: 10,000 rows once took the estimator 37 s a read.
        raise _too_many(len(appointments), max_per_day, "in one push")
    if appointments:
        # What the rows may refer to, read once: a day is a few hundred rows, one statement.
        pets = [a.get("pet") for a in appointments]
        known = _Known(
            vets=set(await tx.vet_names()),
            types=await tx.booked_lengths(),
            pets=await tx.known_pets(p.strip() for p in pets if isinstance(p, str)),
        )
        rows = [_appointment_row(a, f"appointments[{i}]", tz, known) for i, a in enumerate(appointments)]
        # A re-push moves a booking that has not happened yet; it never rewrites what happened.
        await tx.save_bookings(rows)
        if max_per_day is not None:
            await check_day_cap(tx, {r.day for r in rows}, max_per_day)
    counts["appointments"] = len(appointments)
    blocks = _list(doc, "blocks")
    if blocks:
        vets = set(await tx.vet_names())
        await tx.save_vet_blocks([_block_row(b, f"blocks[{i}]", tz, vets) for i, b in enumerate(blocks)])
        counts["blocks"] = len(blocks)
    return counts


def _block_row(b: dict[str, Any], where: str, tz: tzinfo, vets: set[str]) -> VetBlock:
    bid = _req(b, "id", where)
    vet = _req(b, "vet", where)
    if vet not in vets:
        raise BadRequest(f"{where}.vet: unknown vet {vet!r}", f"{where}.vet")
    start = parse_time(b.get("start"), tz, f"{where}.start")
    end = parse_time(b.get("end"), tz, f"{where}.end")
    if not timedelta(0) < end - start <= timedelta(days=1):
        raise BadRequest(f"{where}.end: expected after start, within a day of it", f"{where}.end")
    reason = b.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 200:
        raise BadRequest(f"{where}.reason: expected a string of at most 200 characters", f"{where}.reason")
    return VetBlock(bid, vet, start.astimezone(tz).date(), start, end, reason.strip())


def _too_many(n: int, cap: int, where: str) -> TooLarge:
    return TooLarge(f"appointments: {n} visits {where}; this clinic takes at most {cap} a day "
                    "(clinic setting max_visits_per_day)", "appointments")


async def check_day_cap(tx: Tx, days: set[date], cap: int) -> None:
    """TooLarge (413) when any of `days` now holds more than `cap` visits (the caller's
    transaction then rolls back, so nothing of the push is kept)."""
    for day in sorted(days):
        n = await tx.count_visits(day)
        if n > cap:
            raise _too_many(n, cap, f"on {day.isoformat()}")


@dataclass(frozen=True, slots=True)
class _Known:
    vets: set[str]
    types: dict[str, float]
    pets: set[str]


def _appointment_row(a: dict[str, Any], where: str, tz: tzinfo, known: _Known) -> BookedVisit:
    aid = _req(a, "id", where)
    vet = _req(a, "vet", where)
    type_id = _str(a, "type", where, required=False)
    pet = _str(a, "pet", where, required=False)
    scheduled = parse_time(a.get("scheduled"), tz, f"{where}.scheduled")
    if vet not in known.vets:
        raise BadRequest(f"{where}.vet: unknown vet {vet!r}", f"{where}.vet")
    booked = _minutes(a, "booked_min", where, required=False)
    if type_id is not None:
        if type_id not in known.types:
            raise BadRequest(f"{where}.type: unknown appointment type {type_id!r}", f"{where}.type")
        booked = booked or known.types[type_id]
    if booked is None:
        raise BadRequest(f"{where}.booked_min: needed when there is no type", f"{where}.booked_min")
    pet_id, pet_name = None, None
    if pet is not None:
        if pet in known.pets:
            pet_id = pet
        else:
            pet_name = pet  # a bare pet name (replay, simple PMS exports)
    return BookedVisit(aid, scheduled.astimezone(tz).date(), vet, type_id, pet_id, pet_name, scheduled, booked)
