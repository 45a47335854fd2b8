"""X-Twilio-Signature: an HMAC (key: the auth token) of the full URL followed by every POST
parameter name and value, sorted by name, base64-encoded.

https://www.twilio.com/docs/usage/webhooks/webhooks-security. By default the HMAC is SHA-1
with the account's auth token. When a Twilio Webhook Rule matches the URL, Twilio signs with
that rule's SharedKey secret and names the algorithm in `X-Twilio-Webhooks-Signature-Settings:
key=<id>,algorithm=HMAC_SHA256` (https://www.twilio.com/docs/usage/webhooks/webhook-shared-keys);
only the hash and the key change. Twilio signs the URL *as configured in Twilio*, and its own
validator accepts it with or without the scheme's default port (`:443`, `:80`), so we do too.
Checked in tests against the official `twilio` package's RequestValidator.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
HMAC_SHA1, HMAC_SHA256 = "HMAC_SHA1", "HMAC_SHA256"
_HASHES: dict[str, str] = {HMAC_SHA1: "sha1", HMAC_SHA256: "sha256"}

Params = Mapping[str, str] | Iterable[tuple[str, str]]


def _pairs(params: Params) -> list[tuple[str, str]]:
    items = list(params.items()) if isinstance(params, Mapping) else list(params)
    # As Twilio's validator: by name, then value, each distinct pair once.
    return sorted(set(items))


def signature_algorithm(settings_header: str | None) -> str:
    """The algorithm `X-Twilio-Webhooks-Signature-Settings` names; none (or no header): HMAC_SHA1."""
    for part in (settings_header or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return HMAC_SHA1


def compute_signature(secret: str, url: str, params: Params, algorithm: str = HMAC_SHA1) -> str:
    digestmod = _HASHES.get(algorithm.upper())
    if digestmod is None:
        raise ValueError(f"unsupported webhook signature algorithm {algorithm!r}")
    data = url + "".join(k + v for k, v in _pairs(params))
    mac = hmac.new(secret.encode("utf-8"), data.encode("utf-8"), digestmod).digest()
    return base64.b64encode(mac).decode("ascii")


def url_variants(url: str) -> list[str]:
    """`url` without and with its scheme's default port: Twilio signs whichever was configured,
    and a proxy may add or drop it on the way."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return [url]
    if default is None or parts.hostname is None or port not in (None, default):
        return [url]
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.netloc[: len(parts.netloc) - len(host)]
    bare = host[: -len(f":{port}")] if port is not None else host
    return [urlunsplit(parts._replace(netloc=user + bare)),
            urlunsplit(parts._replace(netloc=f"{user}{bare}:{default}"))]


def validate_signature(auth_token: str, url: str, params: Params, signature: str | None, *,
                       settings_header: str | None = None, shared_key: str | None = None) -> bool:
    """True when `signature` is Twilio's for this URL (with or without its default port) and
    form; constant-time comparison. With `X-Twilio-Webhooks-Signature-Settings` the header's
    algorithm is used and the SharedKey secret (`shared_key`) is tried before the auth token."""
    if not signature:
        return False
    algorithm = signature_algorithm(settings_header)
    if algorithm not in _HASHES:
        return False
    secrets = [s for s in ([shared_key, auth_token] if settings_header is not None else [auth_token]) if s]
    pairs = _pairs(params)
    ok = False
    for secret in secrets:
        for candidate in url_variants(url):
            expected = compute_signature(secret, candidate, pairs, algorithm)
            ok |= hmac.compare_digest(expected.encode(), signature.encode())
    return ok
