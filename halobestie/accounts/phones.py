"""Indonesian phone numbers → E.164 (`+628…`), parsed with the phonenumbers library."""

import phonenumbers
from django.core.exceptions import ValidationError

INVALID_PHONE = "Nomor HP tidak valid. Gunakan nomor Indonesia, mis. 0812xxxxxxx atau +62812xxxxxxx."


def normalize_phone(raw) -> str:
    """`08…`, `628…`, `+628…` (with spaces or dashes) → `+628…`. Raises ValidationError for
    anything that is not a valid Indonesian mobile number."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 32:
        raise ValidationError(INVALID_PHONE, code="invalid_phone")
    text = raw.strip()
    if text.startswith("62"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, "ID")
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(INVALID_PHONE, code="invalid_phone") from exc
    if (
        number.country_code != 62
        or not phonenumbers.is_valid_number(number)
        or phonenumbers.number_type(number)
        not in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    ):
        raise ValidationError(INVALID_PHONE, code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
