"""The web pages' routes for the OpenAPI document (server/openapi.py merges them in).

They are HTML pages, event streams and form posts, not JSON API: described so the
document still names every route the app serves (a test checks that).
"""

from __future__ import annotations

from typing import Any


def _page(summary: str, auth: str, content: str = "text/html", form: dict[str, Any] | None = None,
          params: tuple[str, ...] = ()) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "x-auth": auth, "security": [], "tags": ["web"],
                          "responses": {"200": {"description": "OK", "content": {content: {}}}}}
    if form is not None:
        props = {"csrf": {"type": "string"}, **form}
        op["requestBody"] = {"required": True, "content": {"application/x-www-form-urlencoded": {
            "schema": {"type": "object", "required": ["csrf"], "properties": props}}}}
        op["responses"] = {
            "200": {"description": "Done (posted by the page's script): {ok, message, undo}",
                    "content": {"application/json": {}}},
            "303": {"description": "Done (plain form post): back to the page with a message"},
            "401": {"description": "Not signed in (script post); a plain post is redirected to /login"},
            "403": {"description": "The CSRF token is missing or wrong"},
            "409": {"description": "Impossible now (e.g. undo of an action a later one depends on)"},
        }
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                            for p in params]
    return op


_S = {"type": "string"}
STAFF = "staff session cookie"


def web_paths() -> dict[str, Any]:
    return {
        "/": {"get": _page("Redirect to the console", "public")},
        "/login": {"get": _page("Staff sign-in form", "public"),
                   "post": _page("Sign in (5 failures lock the name for 15 min)", "public",
                                 form={"name": _S, "password": _S, "next": _S})},
        "/logout": {"post": _page("Sign out", STAFF, form={})},
        "/console": {"get": _page("Reception console: one lane per vet", STAFF)},
        "/console/live": {"get": _page("Console's live regions (server-sent events)", STAFF, "text/event-stream")},
        "/console/emergency": {"post": _page("Declare an emergency", STAFF,
                                             form={"vet": _S, "minutes": _S, "pet": _S})},
        "/console/vet-late": {"post": _page("Vet running late by N min / away until", STAFF,
                                            form={"vet": _S, "minutes": _S, "until": _S, "reason": _S})},
        "/console/vets/{vet}/available": {"post": _page("Vet available again", STAFF, form={}, params=("vet",))},
        "/console/visits/{id}/{action}": {"post": _page(
            "Visit override: checkin, start, end, noshow, up, down, move {vet}, pause-texts, resume-texts, "
            "text {body}, recovery", STAFF, form={"vet": _S, "body": _S}, params=("id", "action"))},
        "/console/texts/{what}": {"post": _page("Pause or resume all texts", STAFF, form={}, params=("what",))},
        "/console/undo/{seq}": {"post": _page("Undo an event", STAFF, form={}, params=("seq",))},
        "/console/alerts/{seq}/ack": {"post": _page("Acknowledge a kiosk alert", STAFF, form={}, params=("seq",))},
        "/console/inbox/{id}/{what}": {"post": _page("Reply to (or close) a client's text", STAFF,
                                                     form={"body": _S}, params=("id", "what"))},
        "/display": {"get": _page("Lobby display (?token=<display token>)", "display token")},
        "/display/live": {"get": _page("Lobby display's live region", "display token", "text/event-stream")},
        "/s/{token}": {"get": _page("A client's status page", "signed link", params=("token",))},
        "/s/{token}/live": {"get": _page("Status page's live region", "signed link", "text/event-stream",
                                         params=("token",))},
        "/s/{token}/car": {"post": _page("I'm waiting in my car: text me", "signed link", form={},
                                         params=("token",))},
    }
