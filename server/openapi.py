"""The OpenAPI 3.1 document: every route, its auth, its bodies and answers.

A test checks that every route the app serves is described here, so this cannot drift.
"""

from __future__ import annotations

from typing import Any

_TIME = {"type": "string", "format": "date-time"}
_ERROR = {"$ref": "#/components/schemas/Error"}


def _resp(schema: dict[str, Any], status: str = "200", errors: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {status: {"description": "OK", "content": {"application/json": {"schema": schema}}}}
    for code in errors:
        out[code] = {"description": _REASONS[code], "content": {"application/json": {"schema": _ERROR}}}
    return out


_REASONS = {
    "400": "Bad input; `field` names what is wrong",
    "401": "No token, or an unknown one",
    "403": "The token's role may not use this route",
    "404": "Unknown appointment",
    "409": "Impossible transition",
    "413": "Body too large",
    "429": "This kiosk token's budget (shared by lookup, check-in, walk-in and urgent) is spent: retry later",
}
_AUTH = ("400", "401", "403", "413")


def _op(summary: str, roles: list[str] | None, responses: dict[str, Any],
        body: dict[str, Any] | None = None, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if roles is not None:
        op["security"] = [{"bearer": []}]
        op["x-roles"] = roles
    else:
        op["security"] = []
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


_ESTIMATE = {
    "type": "object",
    "required": ["start", "p10", "p90", "wait_min", "low_min", "high_min"],
    "properties": {"start": _TIME, "p10": _TIME, "p90": _TIME, "wait_min": {"type": "integer"},
                   "low_min": {"type": "integer"}, "high_min": {"type": "integer"}},
}
_VISITS: dict[str, Any] = {
    "type": "object", "required": ["now", "visits"],
    "properties": {"now": _TIME, "visits": {"type": "array", "items": {
        "type": "object", "required": ["appointment", "pet", "vet", "status", "status_url"],
        "properties": {"appointment": {"type": "string"}, "kind": {"type": "string"},
                       "pet": {"type": ["string", "null"]}, "sex": {"type": "string"},
                       "vet": {"type": "string"}, "status": {"type": "string"},
                       "scheduled": {"type": ["string", "null"], "format": "date-time"},
                       "estimate": {"oneOf": [_ESTIMATE, {"type": "null"}]},
                       "status_url": {"type": "string"}}}}},
}
_IDEM = {"type": "string", "minLength": 8, "maxLength": 100}
_STR = {"type": "string", "minLength": 1, "maxLength": 200}
_MIN = {"type": "number", "exclusiveMinimum": 0, "maximum": 1440}
_OPT_STR = {"oneOf": [_STR, {"type": "null"}]}
_OPT_MIN = {"oneOf": [_MIN, {"type": "null"}]}
_OPT_TIME = {"oneOf": [_TIME, {"type": "null"}]}


def openapi_document() -> dict[str, Any]:
    # One shape per event type (a `type` const in each), mirroring server/events.py's parse_event:
    # fields another type uses are not constrained here, because the server ignores them; a
    # null optional field means "absent", as there.
    def _ev(kind: str, required: list[str], props: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"type": "object", "required": ["type", *required],
                "properties": {"type": {"const": kind}, "at": _OPT_TIME, **props}, **extra}

    transition = {"appointment": _STR}
    event = {
        "description": "The replay protocol's event shapes (see ../shared/replay/PROTOCOL.md), plus "
                       "vet_late {vet, minutes|until, reason?}, vet_available {vet} and urgent {note?}.",
        "oneOf": [
            *(_ev(k, ["appointment"], transition) for k in ("checkin", "start", "end", "noshow")),
            *(_ev(k, [], {}, oneOf=[{"required": ["id"], "properties": {"id": _STR}},
                                    {"required": ["appointment"], "properties": {"appointment": _STR},
                                     "not": {"required": ["id"]}}])
              for k in ("emergency_start", "emergency_end")),
            _ev("walkin", ["appointment"], {"appointment": {
                "type": "object", "required": ["id", "vet"],
                "properties": {"id": _STR, "vet": _STR, "type": _OPT_STR, "booked_min": _OPT_MIN,
                               "pet": _OPT_STR}}}),
            _ev("emergency", ["id", "vet"], {"id": _STR, "vet": _STR, "expected_min": _OPT_MIN, "pet": _OPT_STR}),
            _ev("vet_late", ["vet"], {"vet": _STR, "minutes": _OPT_MIN, "until": _OPT_TIME, "reason": _OPT_STR},
                anyOf=[{"required": ["minutes"], "properties": {"minutes": _MIN}},
                       {"required": ["until"], "properties": {"until": _TIME}}]),
            _ev("vet_available", ["vet"], {"vet": _STR}),
            _ev("urgent", [], {"note": _OPT_STR}),
        ],
    }
    schedule = {
        "type": "object",
        "properties": {
            "vets": {"type": "array", "items": {"type": "object", "required": ["id", "name"],
                                                "properties": {"id": _STR, "name": _STR,
                                                               "title": {"type": "string", "enum": ["Dr.", "Dra."],
                                                                         "description": "for Spanish sentences"}}}},
            "appointment_types": {"type": "array", "items": {
                "type": "object", "required": ["id", "name", "booked_min"],
                "properties": {"id": _STR, "name": _STR, "booked_min": _MIN}}},
            "clients": {"type": "array", "items": {
                "type": "object", "required": ["id", "name"],
                "properties": {"id": _STR, "name": _STR, "mobile": _STR, "sms_consent": {"type": "boolean"},
                               "language": {"enum": ["en", "es"]}, "notes": {"type": "string"}}}},
            "pets": {"type": "array", "items": {
                "type": "object", "required": ["id", "name"],
                "properties": {"id": _STR, "client": _STR, "name": _STR, "species": _STR,
                               "sex": {"enum": ["female", "male", "unknown", "f", "m", "F", "M"]}}}},
            "appointments": {"type": "array", "items": {
                "type": "object", "required": ["id", "vet", "scheduled"],
                "properties": {"id": _STR, "vet": _STR, "type": _STR, "pet": _STR, "scheduled": _TIME,
                               "booked_min": _MIN}}},
            "blocks": {"type": "array", "items": {
                "type": "object", "required": ["id", "vet", "start", "end"],
                "properties": {"id": _STR, "vet": _STR, "start": _TIME, "end": _TIME,
                               "reason": {"type": "string", "maxLength": 200}}}},
        },
    }
    paths: dict[str, Any] = {
        "/api/health": {"get": _op("Liveness", None, _resp({"type": "object"}))},
        "/api/openapi.json": {"get": _op("This document", None, _resp({"type": "object"}))},
        "/api/schedule": {"post": _op("Import a day's schedule (idempotent by id)", ["pms", "reception"],
                                      _resp({"type": "object", "required": ["imported"]}, errors=_AUTH),
                                      body=schedule)},
        "/api/events": {"post": _op("Post one event", ["pms", "reception"],
                                    _resp({"type": "object", "required": ["seq"]}, "201",
                                          errors=(*_AUTH, "404", "409")), body=event)},
        "/api/estimates": {"get": _op("Every pending visit's estimate", ["pms", "reception", "display"],
                                      _resp({"type": "object", "required": ["now", "estimates"]},
                                            errors=("401", "403")))},
        "/api/appointments/{id}": {"get": _op(
            "One visit and its estimate", ["pms", "reception"],
            _resp({"type": "object", "required": ["id", "status"]}, errors=("401", "403", "404")),
            params=[{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}])},
        "/api/changes": {"get": _op(
            "Every booking change made here after event `since` (reschedules and cancels by clients, "
            "reschedule requests, moves to another vet, no-shows, walk-ins, emergencies, and undos of "
            "those), oldest first; call again with `next`", ["pms"],
            _resp({"type": "object", "required": ["changes", "next"], "properties": {
                "changes": {"type": "array", "items": {"type": "object", "required": [
                    "seq", "type", "at", "appointment", "actor"]}},
                "next": {"type": "integer"}}}, errors=("400", "401", "403")),
            params=[{"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}])},
        "/api/sms/receive": {"post": _op(
            "A client's text, taken as Twilio's webhook would bring it (console SMS provider only: "
            "with Twilio, replies come from Twilio)", ["reception"],
            _resp({"type": "object", "required": ["sid", "from", "kind", "answers"]}, errors=(*_AUTH, "409")),
            body={"type": "object", "required": ["from", "body"],
                  "properties": {"from": _STR, "body": {"type": "string", "maxLength": 1600}}})},
        "/api/kiosk/lookup": {"post": _op(
            "Today's appointments for a mobile number (pet names, times, vets only)", ["kiosk"],
            _resp({"type": "object", "required": ["now", "appointments", "sms_consent"]},
                  errors=(*_AUTH, "429")),
            body={"type": "object", "required": ["phone"], "properties": {"phone": _STR}})},
        "/api/kiosk/checkin": {"post": _op(
            "Check in some (or, with an empty list, all) of a number's appointments today; an empty list "
            "answers `visits: []` and `checked_in` (a count), never the visits found", ["kiosk"],
            _resp({**_VISITS, "properties": {**_VISITS["properties"], "checked_in": {"type": "integer"}}},
                  errors=(*_AUTH, "404", "409", "429")),
            body={"type": "object", "required": ["phone", "idempotency_key"], "properties": {
                "phone": _STR, "appointments": {"type": "array", "items": _STR},
                "sms_consent": {"type": "boolean"}, "idempotency_key": _IDEM, "taken_at": _TIME}})},
        "/api/kiosk/walkin": {"post": _op(
            "A walk-in joins the queue", ["kiosk"], _resp(_VISITS, errors=(*_AUTH, "429")),
            body={"type": "object", "required": ["name", "pet", "species", "reason", "idempotency_key"],
                  "properties": {"name": _STR, "pet": _STR, "species": _STR, "reason": _STR,
                                 "phone": _STR, "idempotency_key": _IDEM}})},
        "/api/kiosk/urgent": {"post": _op(
            "My pet needs urgent help: alert reception", ["kiosk"],
            _resp({"type": "object", "required": ["ok"]}, errors=(*_AUTH, "429")),
            body={"type": "object", "required": ["idempotency_key"],
                  "properties": {"idempotency_key": _IDEM, "note": {"type": "string", "maxLength": 500}}})},
        "/api/kiosk/clinic": {"get": _op(
            "The clinic's name, for the kiosk's top bar", ["kiosk"],
            _resp({"type": "object", "required": ["name"], "properties": {"name": _STR}},
                  errors=("401", "403")))},
        "/api/kiosk/visits/{id}": {"get": _op(
            "Live estimate of a visit this kiosk checked in", ["kiosk"],
            _resp(_VISITS, errors=("401", "403", "404")),
            params=[{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}])},
    }
    from server.web.openapi_pages import web_paths

    paths.update(web_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "waitroom", "version": "0.1.0",
                 "description": "Waiting-room API of a veterinary clinic. Tokens: `waitroom token create`."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"],
                                  "properties": {"error": {"type": "string"}, "field": {"type": "string"}}}},
        },
    }
