"""Staff accounts, sessions and CSRF for the reception console.

Passwords are hashed with scrypt (memory-hard, in the standard library). A session is a
random cookie whose sha256 is stored with the session's CSRF token; every POST of a
signed-in page must echo that token. Five failed logins for a name from one address within
15 minutes lock that name for that address for 15 minutes, whatever the password; ten from one
address lock the address; fifty for one name from anywhere lock the name. A stranger can thus
neither guess faster nor lock the desk out of its own accounts from elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from server.http import site
from server.keys import CLOCK
from server.store import LoginAttempt, Tx

SESSION_COOKIE = "wr_session"
LOGIN_CSRF_COOKIE = "wr_login_csrf"
SESSION_HOURS = 12
LOCKOUT_FAILURES = 5  # one name from one address
ADDRESS_FAILURES = 10  # one address, whatever the names
NAME_FAILURES_ANYWHERE = 50  # one name from all addresses together
LOCKOUT_WINDOW = timedelta(minutes=15)
ATTEMPTS_KEPT = timedelta(days=1)
MIN_PASSWORD = 8
# scrypt cost: n=2**14, r=8 is 16 MiB and ~50 ms per check: slow for a guesser, fine for a desk.
_N, _R, _P = 2**14, 8, 1

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AuthError(Exception):
    """A user could not be created (bad name, short password, name taken)."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        algo, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if algo != "scrypt":
            return False
        salt, want = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        got = hashlib.scrypt(password.encode(), salt=salt, n=int(n), r=int(r), p=int(p),
                             maxmem=64 * 1024 * 1024, dklen=len(want))
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


# Checked when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


async def create_user(tx: Tx, name: str, password: str, now: datetime, *, group_admin: bool = False) -> None:
    """Add a staff account (inside the caller's transaction); a group admin's signs in at every
    clinic of the group (PostgreSQL only)."""
    name = name.strip()
    if not name or len(name) > 60 or any(c.isspace() for c in name):
        raise AuthError("the name must be 1 to 60 characters without spaces")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password must be at least {MIN_PASSWORD} characters")
    if await tx.staff_name_taken(name):
        raise AuthError(f"a user named {name!r} exists already")
    pw_hash = await asyncio.to_thread(hash_password, password)
    await tx.add_staff_user(name, pw_hash, now, group_admin=group_admin)


@dataclass(frozen=True, slots=True)
class Staff:
    user_id: int
    name: str
    csrf: str
    group_admin: bool = False

    @property
    def actor(self) -> str:
        return f"user:{self.name}"


STAFF = web.RequestKey("staff", Staff)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def current_staff(request: web.Request) -> Staff | None:
    """The signed-in staff member of this request, or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    async with site(request).store.read() as q:
        session = await q.staff_session(_digest(token))
    if session is None or session.expires_at <= request.app[CLOCK].now():
        return None
    return Staff(session.user_id, session.name, session.csrf, session.group_admin)


def _locked_until(attempts: list[LoginAttempt], now: datetime, limit: int) -> datetime | None:
    """When a lockout ends, if there is one: `limit` failures since the last success, in 15 min.

    `attempts` newest first. A reserved attempt (its password still being checked) counts as a
    failure until it turns out right.
    """
    failures: list[datetime] = []
    for r in attempts:
        if r.ok:
            break
        if r.at > now - LOCKOUT_WINDOW:
            failures.append(r.at)
    if len(failures) < limit:
        return None
    return failures[limit - 1] + LOCKOUT_WINDOW


def client_address(request: web.Request) -> str:
    """Who is asking: the peer's address, or behind a proxy listed in `Config.trusted_proxies`
    the address that proxy put last in X-Forwarded-For (earlier entries are the client's word)."""
    remote = request.remote or ""
    if remote in site(request).config.trusted_proxies:
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        if hops:
            return hops[-1][:64]
    return remote


async def _lockout(tx: Tx, name: str, remote: str, now: datetime) -> tuple[str, datetime] | None:
    """Why and until when this name may not be tried from this address now, or None."""
    checks: tuple[tuple[str, str | None, str | None, int], ...] = (
        # One name from one address: the stranger's failures lock the name for the stranger only.
        ("name", name, remote, LOCKOUT_FAILURES),
        # One address, any names: no faster guessing by spreading guesses over the staff list.
        ("address", None, remote, ADDRESS_FAILURES),
        # One name from many addresses: a distributed guess locks the name for everyone.
        ("name", name, None, NAME_FAILURES_ANYWHERE),
    )
    for why, by_name, by_remote, limit in checks:
        until = _locked_until(await tx.login_attempts(name=by_name, remote=by_remote, limit=limit), now, limit)
        if until is not None:
            return why, until
    return None


class LoginResult:
    OK, BAD, LOCKED, ADDRESS_LOCKED = "ok", "bad", "locked", "address_locked"


async def log_in(request: web.Request, name: str, password: str) -> tuple[str, str | None, datetime | None]:
    """Check a login; on success create a session. Returns (result, session token, locked until).

    The attempt is reserved (written as a failure) in the same transaction that checks the
    lockout, before the password is checked: concurrent guesses each see the ones before them,
    so no more than the limit are ever checked (they used to all read "not locked" at once).
    """
    store = site(request).store
    now = request.app[CLOCK].now()
    name = name.strip()[:60]
    remote = client_address(request)
    async with store.transaction() as tx:
        locked = await _lockout(tx, name, remote, now)
        if locked is not None:
            why, until = locked
            return (LoginResult.ADDRESS_LOCKED if why == "address" else LoginResult.LOCKED), None, until
        attempt = await tx.reserve_login_attempt(name, remote, now)
        # Only the last 15 minutes count: older attempts are kept a day, then let go.
        await tx.forget_login_attempts_before(now - ATTEMPTS_KEPT)
        user = await tx.staff_password(name)
    stored = user[1] if user else _DUMMY_HASH
    ok = await asyncio.to_thread(check_password, password, stored) and user is not None
    if not ok or user is None:
        # This failure may be the fifth: tell the user now rather than on the next try.
        async with store.transaction() as tx:
            locked = await _lockout(tx, name, remote, now)
        if locked is None:
            return LoginResult.BAD, None, None
        return (LoginResult.ADDRESS_LOCKED if locked[0] == "address" else LoginResult.LOCKED), None, locked[1]
    async with store.transaction() as tx:
        await tx.login_attempt_succeeded(attempt)
        token = secrets.token_urlsafe(32)
        await tx.open_staff_session(_digest(token), user[0], secrets.token_urlsafe(32), now,
                                    now + timedelta(hours=SESSION_HOURS))
    return LoginResult.OK, token, None


async def log_out(request: web.Request) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        async with site(request).store.transaction() as tx:
            await tx.close_staff_session(_digest(token))


def is_secure(request: web.Request) -> bool:
    """Served over https (directly, or behind a proxy the configured public URL says is https)."""
    return request.secure or site(request).config.public_url.startswith("https://")


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str,
               max_age: int | None = None) -> None:
    # HttpOnly: page scripts never need it. SameSite=Strict: no cross-site request carries it.
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="Strict",
                        secure=is_secure(request))


def wants_json(request: web.Request) -> bool:
    """The page's script posted this (it wants JSON back), not a plain form submission."""
    return request.headers.get("X-Requested-With") == "fetch"


async def check_csrf(request: web.Request, expected: str) -> None:
    form = await request.post()
    sent = request.headers.get("X-CSRF-Token") or form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise web.HTTPForbidden(text="Refused: this form's security token is missing or out of date. "
                                     "Reload the page and try again.")


def staff_page(handler: Handler) -> Handler:
    """A page for signed-in staff: others are sent to the login page."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        staff = await current_staff(request)
        if staff is None:
            raise web.HTTPSeeOther(f"/login?next={request.path}")
        request[STAFF] = staff
        return await handler(request)

    return wrapped


def staff_post(handler: Handler) -> Handler:
    """A POST for signed-in staff carrying the session's CSRF token (403 without it)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        staff = await current_staff(request)
        if staff is None:
            if wants_json(request):
                return web.json_response({"error": "not signed in"}, status=401)
            raise web.HTTPSeeOther("/login")
        await check_csrf(request, staff.csrf)
        request[STAFF] = staff
        return await handler(request)

    return wrapped
