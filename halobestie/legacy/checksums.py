"""Checksums of an import: per entity, the number of rows and a 64-bit sum of the SHA-256 of each
row's key fields. Computed from the files' accepted records while validating (importer.py) and
again from the database for every imported legacy id (`database_checksums`); equal means the
database holds what the files hold. A sum, so the order of lines does not matter."""

import hashlib
import json
import uuid
from datetime import UTC, datetime

from halobestie.accounts.models import Device, User
from halobestie.legacy.models import LegacyEntity
from mitras.models import Mitra
from payments.models import Payment, Refund
from sessions_app.models import ChatSession, EarningsEntry, Message, MessageKind, Rating, Report

CHECKSUM_FIELDS = {
    "clients": ("id", "phone", "display_name", "is_active", "created_at", "deleted_at"),
    "besties": (
        "id",
        "phone",
        "password",
        "display_name",
        "capacity",
        "gender",
        "created_at",
        "deactivated_at",
    ),
    "devices": ("id", "owner", "owner_id", "token", "platform"),
    "sessions": (
        "id",
        "client_id",
        "bestie_id",
        "status",
        "end_reason",
        "price_idr",
        "duration_seconds",
        "created_at",
        "ended_at",
    ),
    "messages": ("session_id", "seq", "sender", "body", "created_at"),
    "payments": ("id", "session_id", "kind", "amount_idr", "status", "external_id", "paid_at"),
    "refunds": ("id", "payment_id", "amount_idr", "status"),
    "earnings": ("id", "session_id", "amount_idr", "share_percent"),
    "ratings": ("id", "session_id", "score", "comment"),
    "reports": ("id", "session_id", "reporter", "reason", "status"),
}


def _plain(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def row_hash(entity, record) -> int:
    """64 bits of the SHA-256 of the record's checksummed fields. Summed over rows (mod 2**64), so
    the checksum of a file does not depend on the order of its lines."""
    canonical = json.dumps(
        [_plain(record[field]) for field in CHECKSUM_FIELDS[entity]],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def database_checksums(*, imported, entities) -> None:
    """Add to each `entities[name].database_checksum` the rows the database holds for every
    imported legacy id (`imported`: entity → legacy id → our primary key), so rows created by the
    new backend itself are not counted."""
    client_of = {int(pk): lid for lid, pk in imported[LegacyEntity.CLIENT].items()}
    bestie_of = {int(pk): lid for lid, pk in imported[LegacyEntity.BESTIE].items()}
    session_of = {uuid.UUID(pk): lid for lid, pk in imported[LegacyEntity.SESSION].items()}
    payment_of = {uuid.UUID(pk): lid for lid, pk in imported[LegacyEntity.PAYMENT].items()}
    mitra_of = {}
    for chunk in _chunks(list(bestie_of), 10_000):
        for pk, user_id in Mitra.objects.filter(user_id__in=chunk).values_list("pk", "user_id"):
            mitra_of[pk] = bestie_of[user_id]

    def rows(model, ids, fields):
        for chunk in _chunks(list(ids), 5000):
            yield from model.objects.filter(pk__in=chunk).values(*fields).iterator(chunk_size=5000)

    def add(name, record):
        entities[name].database_checksum.add(row_hash(name, record))

    for row in rows(
        User, client_of, ["pk", "phone", "display_name", "is_active", "created_at", "deleted_at"]
    ):
        add("clients", {**row, "id": client_of[row["pk"]]})
    fields = ["pk", "user_id", "user__phone", "user__password", "display_name", "capacity", "gender"]
    for row in rows(Mitra, mitra_of, [*fields, "created_at", "deactivated_at"]):
        add(
            "besties",
            {
                **row,
                "id": mitra_of[row["pk"]],
                "phone": row["user__phone"],
                "password": row["user__password"],
            },
        )
    owner = {pk: ("client", lid) for pk, lid in client_of.items()}
    owner.update((pk, ("bestie", lid)) for pk, lid in bestie_of.items())
    device_of = {int(pk): lid for lid, pk in imported[LegacyEntity.DEVICE].items()}
    for row in rows(Device, device_of, ["pk", "user_id", "token", "platform"]):
        kind, owner_id = owner.get(row["user_id"], (None, None))
        add("devices", {**row, "id": device_of[row["pk"]], "owner": kind, "owner_id": owner_id})
    session_fields = [
        "pk",
        "client_id",
        "mitra_id",
        "status",
        "end_reason",
        "price_idr",
        "duration_seconds",
    ]
    for row in rows(ChatSession, session_of, [*session_fields, "created_at", "ended_at"]):
        add(
            "sessions",
            {
                **row,
                "id": session_of[row["pk"]],
                "client_id": client_of.get(row["client_id"]),
                "bestie_id": mitra_of.get(row["mitra_id"]),
            },
        )
    for chunk in _chunks(list(session_of), 1000):
        clients = dict(ChatSession.objects.filter(pk__in=chunk).values_list("pk", "client_id"))
        messages = Message.objects.filter(session_id__in=chunk).values_list(
            "session_id", "seq", "sender_id", "kind", "body", "created_at"
        )
        for session_id, seq, sender_id, kind, body, created_at in messages.iterator(chunk_size=5000):
            if kind == MessageKind.SYSTEM:
                sender = "system"
            else:
                sender = "client" if sender_id == clients[session_id] else "bestie"
            add(
                "messages",
                {
                    "session_id": session_of[session_id],
                    "seq": seq,
                    "sender": sender,
                    "body": body,
                    "created_at": created_at,
                },
            )
    payment_fields = ["pk", "session_id", "kind", "amount_idr", "status", "external_id", "paid_at"]
    for row in rows(Payment, payment_of, payment_fields):
        add(
            "payments",
            {**row, "id": payment_of[row["pk"]], "session_id": session_of.get(row["session_id"])},
        )
    refund_of = {uuid.UUID(pk): lid for lid, pk in imported[LegacyEntity.REFUND].items()}
    for row in rows(Refund, refund_of, ["pk", "payment_id", "amount_idr", "status"]):
        add(
            "refunds",
            {**row, "id": refund_of[row["pk"]], "payment_id": payment_of.get(row["payment_id"])},
        )
    earning_of = {int(pk): lid for lid, pk in imported[LegacyEntity.EARNING].items()}
    for row in rows(EarningsEntry, earning_of, ["pk", "session_id", "amount_idr", "share_percent"]):
        add(
            "earnings",
            {**row, "id": earning_of[row["pk"]], "session_id": session_of.get(row["session_id"])},
        )
    rating_of = {int(pk): lid for lid, pk in imported[LegacyEntity.RATING].items()}
    for row in rows(Rating, rating_of, ["pk", "session_id", "score", "comment"]):
        add(
            "ratings",
            {**row, "id": rating_of[row["pk"]], "session_id": session_of.get(row["session_id"])},
        )
    report_of = {int(pk): lid for lid, pk in imported[LegacyEntity.REPORT].items()}
    for row in rows(
        Report, report_of, ["pk", "session_id", "reporter_id", "session__client_id", "reason", "status"]
    ):
        reporter = "client" if row["reporter_id"] == row["session__client_id"] else "bestie"
        add(
            "reports",
            {
                **row,
                "id": report_of[row["pk"]],
                "session_id": session_of.get(row["session_id"]),
                "reporter": reporter,
            },
        )
