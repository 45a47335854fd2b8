"""Every signed link a client gets, in one module: reschedule links (signed, expiring,
single use) and status links (signed; `status_token`, at the end).

A reschedule token is `<payload>.<mac>`, both base64url: the payload names the visit, the expiry
(minutes since the epoch) and a random nonce; the MAC is HMAC-SHA256 with the server's
secret, truncated to 96 bits (plenty against forgery online, and the link stays short
enough for one SMS segment). Verifying needs no state; "single use" is the `link_uses`
table: `consume_link` records the nonce in the caller's transaction, so the booking and
the use commit together or not at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from notifier.store import InboxTx

_MAC_BYTES = 12


class LinkError(Exception):
    """A reschedule link that cannot be used; `reason` is for the page."""

    reason = "invalid"


class ForgedLink(LinkError):
    reason = "forged"


class ExpiredLink(LinkError):
    reason = "expired"


class UsedLink(LinkError):
    reason = "used"


@dataclass(frozen=True, slots=True)
class LinkClaim:
    visit_id: str
    expires_at: datetime
    nonce: str


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest()[:_MAC_BYTES])


def make_token(secret: bytes, visit_id: str, now: datetime, valid_for: timedelta = timedelta(hours=24),
               nonce: str | None = None) -> str:
    """A token for `visit_id` good until `now + valid_for` (to the minute, rounded up)."""
    if not secret:
        raise ValueError("an empty secret signs nothing")
    exp = -int(-(now + valid_for).timestamp() // 60)
    nonce = nonce or _b64(secrets.token_bytes(6))
    payload = _b64(f"{visit_id}|{exp:x}|{nonce}".encode())
    return f"{payload}.{_mac(secret, payload)}"


def verify_token(secret: bytes, token: str, now: datetime) -> LinkClaim:
    """The claim a token makes; raises ForgedLink or ExpiredLink. Does not check use."""
    payload, dot, mac = token.strip().partition(".")
    if not token.isascii():
        raise ForgedLink("the link has characters no link of ours has")
    if not dot or not payload or not hmac.compare_digest(mac.encode(), _mac(secret, payload).encode()):
        raise ForgedLink("the link's signature does not match")
    try:
        visit_id, exp_hex, nonce = _unb64(payload).decode("utf-8").rsplit("|", 2)
        expires_at = datetime.fromtimestamp(int(exp_hex, 16) * 60, UTC)
    except (ValueError, UnicodeDecodeError) as e:  # signed by us yet unreadable: treat as forged
        raise ForgedLink("the link is malformed") from e
    if now >= expires_at:
        raise ExpiredLink(f"the link expired at {expires_at.isoformat()}")
    return LinkClaim(visit_id=visit_id, expires_at=expires_at, nonce=nonce)


async def check_link(tx: InboxTx, secret: bytes, token: str, now: datetime) -> LinkClaim:
    """Verify and check the link is unused (for showing the page); raises a LinkError."""
    claim = verify_token(secret, token, now)
    used = await tx.link_used_at(claim.nonce)
    if used is not None:
        raise UsedLink(f"the link was used at {used.isoformat()}")
    return claim


async def consume_link(tx: InboxTx, secret: bytes, token: str, now: datetime) -> LinkClaim:
    """Verify and mark used, inside the caller's transaction (with the booking it makes)."""
    claim = await check_link(tx, secret, token, now)
    await tx.record_link_use(claim.nonce, claim.visit_id, now
    )
    return claim


# Secrets that travel in URLs: a client's status (/s/) or reschedule (/r/) token in the path,
# a display token in `?token=`. Logs keep the route and drop the secret.
_SECRET_PATH = re.compile(r"(/[rs]/)[^/?#\s\"']+")
_SECRET_QUERY = re.compile(r"([?&](?:token|csrf)=)[^&#\s\"']*")
REDACTED = "<redacted>"


def redact(text: str) -> str:
    """`text` (a path and query, a URL, or a text message) with every link secret replaced by
    `<redacted>`: `/r/<token>` and `/s/<token>/live` keep their shape, `?token=` its name."""
    return _SECRET_QUERY.sub(r"\1" + REDACTED, _SECRET_PATH.sub(r"\1" + REDACTED, text))


# -- status links: a client's own status page (no account, nothing guessable, no expiry: the
# page shows only that visit, and only while it is today's)


def _status_sig(secret: str, payload: str) -> str:
    mac = hmac.new(secret.encode(), f"status:{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode().rstrip("=")


def status_token(secret: str, visit_id: str) -> str:
    """`<visit id, base64>.<signature>`: opens only that visit's status page."""
    vid = base64.urlsafe_b64encode(visit_id.encode()).decode().rstrip("=")
    return f"{vid}.{_status_sig(secret, visit_id)}"


def verify_status_token(secret: str, token: str) -> str | None:
    """The visit id a status token was made for, or None when it is forged or malformed."""
    try:
        vid_b64, sig = token.split(".", 1)
        visit_id = base64.urlsafe_b64decode(vid_b64 + "=" * (-len(vid_b64) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    # As bytes: compare_digest raises TypeError on a str with non-ASCII characters (a 500 on a forged link).
    return visit_id if hmac.compare_digest(sig.encode(), _status_sig(secret, visit_id).encode()) else None
