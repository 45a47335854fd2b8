"""Signed links for clients: a status page per visit (no account, nothing guessable)."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _sig(secret: str, purpose: str, payload: str) -> str:
    mac = hmac.new(secret.encode(), f"{purpose}:{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode().rstrip("=")


def status_token(secret: str, visit_id: str) -> str:
    """`<visit id, base64>.<signature>`: opens only that visit's status page."""
    vid = base64.urlsafe_b64encode(visit_id.encode()).decode().rstrip("=")
    return f"{vid}.{_sig(secret, 'status', visit_id)}"


def verify_status_token(secret: str, token: str) -> str | None:
    """The visit id a status token was made for, or None when it is forged or malformed."""
    try:
        vid_b64, sig = token.split(".", 1)
        visit_id = base64.urlsafe_b64decode(vid_b64 + "=" * (-len(vid_b64) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    # As bytes: compare_digest raises TypeError on a str with non-ASCII characters (a 500 on a forged link).
    return visit_id if hmac.compare_digest(sig.encode(), _sig(secret, "status", visit_id).encode()) else None
