"""The web pages' routes for the OpenAPI document (server/openapi.py merges them in).

They are HTML pages, event streams and form posts, not JSON API: described so the
document still names every route the app serves (a test checks that).
"""

from __future__ import annotations

from typing import Any


def _page(summary: str, auth: str, content: str = "text/html", form: dict[str, Any] | None = None,
          params: tuple[str, ...] = ()) -> dict[str, Any]:
    # Answers are pages, redirects and streams; `default` documents them without a JSON schema.
    # The form's fields go in `x-form`, not `requestBody`: the API fuzzer must not take a
    # redirect to the login page for "accepted invalid data".
    op: dict[str, Any] = {"summary": summary, "x-auth": auth, "security": [], "tags": ["web"],
                          "responses": {"default": {"description": f"{content}, or a redirect"}}}
    if form is not None:
        op["x-form"] = {"csrf": {"type": "string"}, **form}
        op["responses"] = {"default": {"description": (
            "JSON {ok, message, undo} to the page's script (X-Requested-With: fetch), else 303 back to the page; "
            "401 (script) or 303 to /login when not signed in; 403 without the CSRF token; "
            "400/404/409 for bad input, an unknown visit or an impossible change")}}
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                            for p in params]
    return op


_S = {"type": "string"}
STAFF = "staff session cookie"


def web_paths() -> dict[str, Any]:
    return {
        "/": {"get": _page("Redirect to the console", "public")},
        "/favicon.ico": {"get": _page("The site's icon (browsers ask every site for it)", "public",
                                      "image/x-icon")},
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
        "/console/vet-title": {"post": _page("A vet's title in Spanish sentences: Dr. / Dra. / none", STAFF,
                                             form={"vet": _S, "title": _S})},
        "/console/vets/{vet}/available": {"post": _page("Vet available again", STAFF, form={}, params=("vet",))},
        "/console/visits/{id}/{action}": {"post": _page(
            "Visit override: checkin, start, end, noshow, up, down, move {vet}, pause-texts, resume-texts, "
            "text {body}, recovery", STAFF, form={"vet": _S, "body": _S}, params=("id", "action"))},
        "/console/texts/{what}": {"post": _page("Pause or resume all texts", STAFF, form={}, params=("what",))},
        "/console/undo/{seq}": {"post": _page("Undo an event", STAFF, form={}, params=("seq",))},
        "/console/alerts/{seq}/ack": {"post": _page("Acknowledge a kiosk alert", STAFF, form={}, params=("seq",))},
        "/console/inbox/{id}/{what}": {"post": _page("Reply to (or close) a client's text", STAFF,
                                                     form={"body": _S}, params=("id", "what"))},
        "/console/outbox/{id}/{what}": {"post": _page(
            "Reception's decision on a held or failed text: resend, drop (held) or dismiss (failed)", STAFF,
            form={}, params=("id", "what"))},
        "/console/pms/{id}/{what}": {"post": _page(
            "Reception's call on a practice-system write-back: done (by hand) or retry (a failed one)", STAFF,
            form={}, params=("id", "what"))},
        "/console/reports": {"get": _page(
            "Practice manager's reports (?period=day|week|month|year|custom&date=&to=&vet=&page=)", STAFF)},
        "/console/reports/{name}.csv": {"get": _page("One report table as CSV (same query as the page)", STAFF,
                                                     "text/csv", params=("name",))},
        "/console/reports/{name}.svg": {"get": _page("One report chart as SVG (same query; &download=1)", STAFF,
                                                     "image/svg+xml", params=("name",))},
        "/console/reports/notes": {"post": _page("Reception's note on a service-defect row", STAFF,
                                                 form={"visit": _S, "note": _S, "back": _S})},
        "/group": {"get": _page("Every clinic of the group with its waiting count and longest wait (group admins; "
                                "403 for a clinic's staff)", STAFF)},
        "/display": {"get": _page("Lobby display (?token=<display token>)", "display token")},
        "/display/live": {"get": _page("Lobby display's live region", "display token", "text/event-stream")},
        "/display/call/{id}.wav": {"get": _page(
            "A lobby call's chime and words (espeak-ng), while the call is current; 404 after", "display token",
            "audio/wav", params=("id",))},
        "/s/{token}": {"get": _page("A client's status page", "signed link", params=("token",))},
        "/s/{token}/live": {"get": _page("Status page's live region", "signed link", "text/event-stream",
                                         params=("token",))},
        "/s/{token}/car": {"post": _page("I'm waiting in my car: text me", "signed link", form={},
                                         params=("token",))},
        "/r/{token}": {"get": _page("Reschedule page: open slots (?all=1 any vet), confirm steps (?slot=, ?cancel=1); "
                                    "410 used/expired link, 404 forged", "single-use signed link", params=("token",)),
                       "post": _page("Book the chosen slot (or file a request for reception), or cancel the visit; "
                                     "409 when the slot was taken meanwhile", "single-use signed link",
                                     form={"action": {"enum": ["book", "cancel"]}, "slot": _S}, params=("token",))},
    }
