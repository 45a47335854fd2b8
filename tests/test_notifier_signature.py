"""X-Twilio-Signature, proven against the official twilio package's RequestValidator."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator, get_signature_algorithm

from notifier.twilio_signature import compute_signature, validate_signature

TOKEN = "12345678901234567890123456789012"
URL = "https://clinic.example.com/sms/status?row=42"
PARAMS = {"MessageSid": "SM123", "MessageStatus": "delivered", "To": "+15555550123", "Body": "Señor 👍 & co"}


def test_our_signature_equals_twilios() -> None:
    official = RequestValidator(TOKEN).compute_signature(URL, PARAMS)
    assert compute_signature(TOKEN, URL, PARAMS) == official


@pytest.mark.parametrize("url", [URL, "https://clinic.example.com/sms/inbound", "http://127.0.0.1:8080/sms/inbound"])
def test_a_signature_made_by_twilios_validator_validates(url: str) -> None:
    sig = RequestValidator(TOKEN).compute_signature(url, PARAMS)
    assert validate_signature(TOKEN, url, PARAMS, sig)
    assert RequestValidator(TOKEN).validate(url, PARAMS, compute_signature(TOKEN, url, PARAMS))


def test_default_port_in_the_url_is_tolerated_as_twilio_does() -> None:
    sig = RequestValidator(TOKEN).compute_signature("https://clinic.example.com/sms/inbound", PARAMS)
    assert validate_signature(TOKEN, "https://clinic.example.com:443/sms/inbound", PARAMS, sig)


@pytest.mark.parametrize("forgery", ["other-token", "changed-param", "extra-param", "other-url", "empty", "none"])
def test_forged_signatures_fail_ours_and_twilios(forgery: str) -> None:
    params, url, token = dict(PARAMS), URL, TOKEN
    sig: str | None = RequestValidator(TOKEN).compute_signature(URL, PARAMS)
    if forgery == "other-token":
        sig = RequestValidator("x" * 32).compute_signature(URL, PARAMS)
    elif forgery == "changed-param":
        params["MessageStatus"] = "failed"
    elif forgery == "extra-param":
        params["ErrorCode"] = "21610"
    elif forgery == "other-url":
        url = URL.replace("42", "43")
    elif forgery == "empty":
        sig = ""
    else:
        sig = None
    assert not validate_signature(token, url, params, sig)
    assert not RequestValidator(token).validate(url, params, sig or "")


def test_no_auth_token_validates_nothing() -> None:
    assert not validate_signature("", URL, PARAMS, compute_signature("", URL, PARAMS))


# -- issue 11 item 10: what Twilio's own validator accepts, we accept --------------------------

SHARED = "shared-key-secret-0123456789abcdef"
SETTINGS_256 = "key=webhooks_sharedkey_0123,algorithm=HMAC_SHA256"


@pytest.mark.parametrize(("configured", "ours"), [
    ("https://clinic.example.com:443/sms/inbound", "https://clinic.example.com/sms/inbound"),
    ("http://clinic.example.com:80/sms/status?row=3", "http://clinic.example.com/sms/status?row=3"),
    ("https://clinic.example.com/sms/inbound", "https://clinic.example.com:443/sms/inbound"),
])
def test_a_url_signed_with_or_without_the_default_port_validates_as_twilios_validator_does(
        configured: str, ours: str) -> None:
    # Twilio signs the URL as configured in its console; WAITROOM_PUBLIC_URL may spell the port differently.
    sig = RequestValidator(TOKEN).compute_signature(configured, PARAMS)
    assert RequestValidator(TOKEN).validate(ours, PARAMS, sig)
    assert validate_signature(TOKEN, ours, PARAMS, sig)


def test_another_port_or_host_is_not_the_same_url() -> None:
    for configured in ("https://clinic.example.com:8443/sms/inbound", "https://other.example.com/sms/inbound"):
        sig = RequestValidator(TOKEN).compute_signature(configured, PARAMS)
        assert not validate_signature(TOKEN, "https://clinic.example.com/sms/inbound", PARAMS, sig)


@pytest.mark.parametrize("algorithm", ["HMAC_SHA1", "HMAC_SHA256"])
def test_our_signature_equals_twilios_for_each_algorithm(algorithm: str) -> None:
    assert compute_signature(SHARED, URL, PARAMS, algorithm) == RequestValidator(SHARED).compute_signature(
        URL, PARAMS, algorithm)


@pytest.mark.parametrize("secret", [SHARED, TOKEN])
def test_an_hmac_sha256_signature_with_its_settings_header_validates(secret: str) -> None:
    # A Webhook Rule signs with its SharedKey secret; Twilio's validator takes either secret.
    sig = RequestValidator(secret).compute_signature(URL, PARAMS, "HMAC_SHA256")
    assert RequestValidator(secret).validate(URL, PARAMS, sig, get_signature_algorithm(SETTINGS_256))
    assert validate_signature(TOKEN, URL, PARAMS, sig, settings_header=SETTINGS_256, shared_key=SHARED)


def test_sha256_needs_its_header_the_right_secret_and_a_known_algorithm() -> None:
    sig = RequestValidator(SHARED).compute_signature(URL, PARAMS, "HMAC_SHA256")
    assert not validate_signature(TOKEN, URL, PARAMS, sig, shared_key=SHARED)  # no header: SHA-1 is checked
    assert not validate_signature(TOKEN, URL, PARAMS, sig, settings_header=SETTINGS_256)  # secret not configured
    assert not validate_signature(TOKEN, URL, PARAMS, sig, settings_header=SETTINGS_256, shared_key="other")
    odd = "key=k,algorithm=HMAC_MD5"
    assert not validate_signature(TOKEN, URL, PARAMS, sig, settings_header=odd, shared_key=SHARED)
    assert not RequestValidator(SHARED).validate(URL, PARAMS, sig, get_signature_algorithm(odd))
    # The SharedKey never validates a request that carries no settings header.
    sha1_by_shared = RequestValidator(SHARED).compute_signature(URL, PARAMS)
    assert not validate_signature(TOKEN, URL, PARAMS, sha1_by_shared, shared_key=SHARED)
