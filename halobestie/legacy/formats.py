"""The JSON Lines files of the cutover, one per entity (docs/cutover.md), row by row.

`parse_<entity>(row)` checks one decoded line on its own (types, lengths, choices, phones to
E.164, times to UTC) and returns the normalised record the importer writes, or raises Refused
with the reason. What needs other rows (references, duplicates, per-session seq) is the
importer's; the checksums are checksums.py's.
"""

import re
from datetime import UTC, datetime

from django.core.exceptions import ValidationError

from halobestie.accounts.phones import normalize_phone
from mitras.models import Gender
from sessions_app.models import EndReason

# Dependency order: a file only refers to files before it.
ENTITIES = (
    "clients",
    "besties",
    "devices",
    "sessions",
    "messages",
    "payments",
    "refunds",
    "earnings",
    "ratings",
    "reports",
)

# A bcrypt hash as node's native `bcrypt` writes it ($2b$, older $2a$; $2y$ from PHP tools).
BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
SESSION_STATUSES = ("ended", "cancelled", "unmatched")
OPEN_SESSION_STATUSES = ("pending_payment", "matching", "offered", "active")
PAYMENT_STATUSES = ("paid", "expired", "failed")
REFUND_STATUSES = ("pending", "succeeded", "failed", "manual_settled")
REFUND_COUNTING_STATUSES = ("pending", "succeeded", "manual_settled")
MAX_BODY_CHARS = 65536


class Refused(Exception):
    """A row that is not imported; the message says why (shown in the report)."""


# Fields ------------------------------------------------------------------------------------


def legacy_id(row, key="id") -> str:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Refused(f"{key}: missing or not a string/integer")
    text = str(value).strip()
    if not text or len(text) > 64:
        raise Refused(f"{key}: empty or longer than 64 characters")
    return text


def text(row, key, *, max_length, required=False) -> str:
    value = row.get(key)
    if value is None:
        if required:
            raise Refused(f"{key}: missing")
        return ""
    if not isinstance(value, str):
        raise Refused(f"{key}: not a string")
    if required and not value.strip():
        raise Refused(f"{key}: empty")
    if len(value) > max_length:
        raise Refused(f"{key}: longer than {max_length} characters")
    if "\x00" in value:
        raise Refused(f"{key}: contains a NUL character")
    return value


def integer(row, key, *, minimum=0, maximum=2**31 - 1, default=None) -> int:
    value = row.get(key, default)
    if value is None:
        raise Refused(f"{key}: missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused(f"{key}: not an integer")
    if not minimum <= value <= maximum:
        raise Refused(f"{key}: {value} outside {minimum}..{maximum}")
    return value


def boolean(row, key, *, default) -> bool:
    value = row.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Refused(f"{key}: not true/false")
    return value


def moment(row, key, *, required=False) -> datetime | None:
    """An ISO-8601 time with its UTC offset (`…Z` or `…+07:00`), returned in UTC. A time without
    an offset is refused: the old database's zone is not guessed."""
    value = row.get(key)
    if value is None:
        if required:
            raise Refused(f"{key}: missing")
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise Refused(f"{key}: not an ISO-8601 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Refused(f"{key}: not an ISO-8601 time")
    if parsed.tzinfo is None:
        raise Refused(f"{key}: time without a UTC offset")
    return parsed.astimezone(UTC)


def choice(row, key, choices, *, default=None) -> str:
    value = row.get(key, default)
    if value not in choices:
        raise Refused(f"{key}: {value!r} is not one of {', '.join(choices)}")
    return value


def phone(row, key="phone") -> str:
    try:
        return normalize_phone(row.get(key))
    except ValidationError:
        raise Refused(f"{key}: not a valid Indonesian mobile number")


def string_list(row, key) -> list:
    value = row.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) and len(item) <= 40 for item in value):
        raise Refused(f"{key}: not a list of short strings")
    return value


# Entities ----------------------------------------------------------------------------------


def parse_clients(row) -> dict:
    deleted_at = moment(row, "deleted_at")
    # An account erased on the old backend keeps its row (its sessions and payments point at
    # it) but has no phone any more.
    number = phone(row) if row.get("phone") is not None or deleted_at is None else None
    return {
        "id": legacy_id(row),
        "phone": number,
        "display_name": text(row, "display_name", max_length=100),
        "is_active": boolean(row, "is_active", default=True),
        "created_at": moment(row, "created_at", required=True),
        "deleted_at": deleted_at,
    }


def parse_besties(row) -> dict:
    password_hash = row.get("password_hash")
    if not isinstance(password_hash, str) or not BCRYPT_HASH.match(password_hash):
        raise Refused("password_hash: not a bcrypt hash ($2a$/$2b$/$2y$, 60 characters)")
    gender = row.get("gender") or Gender.UNSPECIFIED
    if gender not in Gender.values:
        raise Refused(f"gender: {gender!r} is not one of {', '.join(Gender.values)}")
    avatar_url = text(row, "avatar_url", max_length=200)
    if avatar_url and not avatar_url.startswith(("https://", "http://")):
        raise Refused("avatar_url: not an http(s) URL")
    return {
        "id": legacy_id(row),
        "phone": phone(row),
        # Django's form of a plain bcrypt hash: BCryptPasswordHasher checks it as it is.
        "password": "bcrypt$" + password_hash,
        "display_name": text(row, "display_name", max_length=100, required=True).strip(),
        "bio": text(row, "bio", max_length=5000),
        "avatar_url": avatar_url,
        "topics": string_list(row, "topics"),
        "languages": string_list(row, "languages") or ["id"],
        "gender": gender,
        "capacity": integer(row, "capacity", minimum=1, maximum=50, default=3),
        "created_at": moment(row, "created_at", required=True),
        "deactivated_at": moment(row, "deactivated_at"),
    }


def parse_devices(row) -> dict:
    return {
        "id": legacy_id(row),
        "owner": choice(row, "owner", ("client", "bestie")),
        "owner_id": legacy_id(row, "owner_id"),
        "token": text(row, "token", max_length=512, required=True),
        "platform": text(row, "platform", max_length=16),
        "created_at": moment(row, "created_at", required=True),
    }


def parse_sessions(row) -> dict:
    status = row.get("status")
    if status in OPEN_SESSION_STATUSES:
        raise Refused(f"status: {status!r} is an open session (only ended sessions are imported)")
    status = choice(row, "status", SESSION_STATUSES)
    bestie_id = legacy_id(row, "bestie_id") if row.get("bestie_id") is not None else None
    record = {
        "id": legacy_id(row),
        "client_id": legacy_id(row, "client_id"),
        "bestie_id": bestie_id,
        "status": status,
        "end_reason": choice(row, "end_reason", EndReason.values),
        "package_code": text(row, "package_code", max_length=32, required=True),
        "duration_seconds": integer(row, "duration_seconds", minimum=1),
        "price_idr": integer(row, "price_idr"),
        "extended_seconds": integer(row, "extended_seconds", default=0),
        "extensions_total_idr": integer(row, "extensions_total_idr", default=0),
        "created_at": moment(row, "created_at", required=True),
        "paid_at": moment(row, "paid_at"),
        "accepted_at": moment(row, "accepted_at"),
        "ends_at": moment(row, "ends_at"),
        "ended_at": moment(row, "ended_at", required=True),
    }
    if status == "ended" and (bestie_id is None or record["accepted_at"] is None):
        raise Refused("an ended session needs bestie_id and accepted_at")
    if record["ended_at"] < record["created_at"]:
        raise Refused("ended_at is before created_at")
    return record


def parse_messages(row) -> dict:
    body = row.get("body")
    if not isinstance(body, str) or len(body) > MAX_BODY_CHARS or "\x00" in body:
        raise Refused(f"body: missing, not a string, longer than {MAX_BODY_CHARS} characters or with NUL")
    return {
        "session_id": legacy_id(row, "session_id"),
        "seq": integer(row, "seq", minimum=1),
        "sender": choice(row, "sender", ("client", "bestie", "system")),
        "body": body,
        "created_at": moment(row, "created_at", required=True),
    }


def parse_payments(row) -> dict:
    status = row.get("status")
    if status == "pending":
        raise Refused("status: 'pending' payment (not final; let it expire or settle before the export)")
    record = {
        "id": legacy_id(row),
        "session_id": legacy_id(row, "session_id"),
        "kind": choice(row, "kind", ("session", "extension")),
        "amount_idr": integer(row, "amount_idr", minimum=1),
        "status": choice(row, "status", PAYMENT_STATUSES),
        "external_id": text(row, "external_id", max_length=64, required=True),
        "invoice_id": text(row, "invoice_id", max_length=64),
        "paid_at": moment(row, "paid_at"),
        "paid_amount_idr": integer(row, "paid_amount_idr", default=0) or None,
        "payment_method": text(row, "payment_method", max_length=40),
        "payment_channel": text(row, "payment_channel", max_length=40),
        "created_at": moment(row, "created_at", required=True),
    }
    if record["status"] == "paid" and record["paid_at"] is None:
        raise Refused("a paid payment needs paid_at")
    return record


def parse_refunds(row) -> dict:
    return {
        "id": legacy_id(row),
        "payment_id": legacy_id(row, "payment_id"),
        "amount_idr": integer(row, "amount_idr", minimum=1),
        "reason": text(row, "reason", max_length=40, required=True),
        "status": choice(row, "status", REFUND_STATUSES),
        "is_gateway_refund": boolean(row, "is_gateway_refund", default=False),
        "xendit_refund_id": text(row, "xendit_refund_id", max_length=100),
        "created_at": moment(row, "created_at", required=True),
        "settled_at": moment(row, "settled_at"),
    }


def parse_earnings(row) -> dict:
    return {
        "id": legacy_id(row),
        "session_id": legacy_id(row, "session_id"),
        "amount_idr": integer(row, "amount_idr"),
        "share_percent": integer(row, "share_percent", maximum=100),
        "created_at": moment(row, "created_at", required=True),
    }


def parse_ratings(row) -> dict:
    return {
        "id": legacy_id(row),
        "session_id": legacy_id(row, "session_id"),
        "score": integer(row, "score", minimum=1, maximum=5),
        "comment": text(row, "comment", max_length=1000),
        "created_at": moment(row, "created_at", required=True),
    }


def parse_reports(row) -> dict:
    status = choice(row, "status", ("open", "resolved"), default="open")
    return {
        "id": legacy_id(row),
        "session_id": legacy_id(row, "session_id"),
        "reporter": choice(row, "reporter", ("client", "bestie")),
        "reason": text(row, "reason", max_length=40, required=True),
        "detail": text(row, "detail", max_length=2000),
        "status": status,
        "resolution_note": text(row, "resolution_note", max_length=5000),
        "resolved_at": moment(row, "resolved_at"),
        "created_at": moment(row, "created_at", required=True),
    }


PARSERS = {name: globals()[f"parse_{name}"] for name in ENTITIES}
