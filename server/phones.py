"""Phone numbers: reading them as people type them, and whether a text can reach them. Pure.

`phonenumbers` knows, for most countries, whether a number is a landline, a mobile or a
toll-free line. For the US and Canada it cannot tell (their landlines and mobiles share
area codes) and answers FIXED_LINE_OR_MOBILE: such numbers are taken as textable, and a
text that fails anyway is shown to reception by the notifier.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType

__all__ = ["PhoneError", "line_kind", "normalise", "not_textable_kind"]

# Number types that never take a text, and how the desk says them. VOIP and personal
# numbers often can (and US/CA numbers come back FIXED_LINE_OR_MOBILE): they stay textable.
_NOT_TEXTABLE = {
    PhoneNumberType.FIXED_LINE: "landline",
    PhoneNumberType.TOLL_FREE: "toll-free number",
    PhoneNumberType.PREMIUM_RATE: "premium-rate number",
    PhoneNumberType.SHARED_COST: "shared-cost number",
    PhoneNumberType.UAN: "company switchboard number",
    PhoneNumberType.VOICEMAIL: "voicemail number",
    PhoneNumberType.PAGER: "pager",
}
KINDS = tuple(_NOT_TEXTABLE.values())


class PhoneError(ValueError):
    """Not a phone number, or not a valid one where it claims to be."""


def normalise(raw: str, region: str) -> str:
    """E.164 for a number typed any usual way ("(312) 555-0102", "1-800-FLOWERS")."""
    try:
        num = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as e:
        raise PhoneError(f"not a phone number: {raw[:30]!r}") from e
    if not phonenumbers.is_valid_number(num):
        raise PhoneError(f"not a valid phone number: {raw[:30]!r}")
    return str(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164))


@lru_cache(maxsize=4096)  # asked for every pending visit each time texts are decided
def line_kind(e164: str) -> str | None:
    """"landline", "toll-free number", ... for a number that cannot take a text; None when it
    can, or may (mobiles, and every US/CA number, which phonenumbers cannot tell apart)."""
    try:
        num = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    return _NOT_TEXTABLE.get(phonenumbers.number_type(num))


def not_textable_kind(raw: str, region: str) -> str | None:
    """`line_kind` of a number as typed; None when it is no valid number (checked elsewhere)."""
    try:
        return line_kind(normalise(raw, region))
    except PhoneError:
        return None
