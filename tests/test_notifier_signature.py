"""X-Twilio-Signature, proven against the official twilio package's RequestValidator."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

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
