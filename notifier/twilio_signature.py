"""X-Twilio-Signature: HMAC-SHA1 (key: the auth token) of the full URL followed by every
POST parameter name and value, sorted by name, base64-encoded.

https://www.twilio.com/docs/usage/webhooks/webhooks-security. Checked in tests against
the official `twilio` package's RequestValidator.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping


def _pairs(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    items = list(params.items()) if isinstance(params, Mapping) else list(params)
    # Sorted by name, then value: a repeated name (rare in Twilio's posts) keeps a stable order.
    return sorted(items)


def compute_signature(auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    data = url + "".join(k + v for k, v in _pairs(params))
    mac = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(mac).decode("ascii")


def _without_port(url: str) -> str:
    # Twilio signs the URL as configured; a proxy may add or drop the default port.
    for scheme, port in (("https://", ":443"), ("http://", ":80")):
        if url.startswith(scheme):
            host_end = url.find("/", len(scheme))
            host = url[len(scheme): host_end if host_end >= 0 else None]
            if host.endswith(port):
                rest = url[host_end:] if host_end >= 0 else ""
                return scheme + host[: -len(port)] + rest
    return url


def validate_signature(auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]],
                       signature: str | None) -> bool:
    """True when `signature` is Twilio's for this URL and form; constant-time comparison."""
    if not signature or not auth_token:
        return False
    pairs = _pairs(params)
    for candidate in {url, _without_port(url)}:
        if hmac.compare_digest(compute_signature(auth_token, candidate, pairs).encode(), signature.encode()):
            return True
    return False
