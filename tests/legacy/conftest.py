"""A generated export (halobestie/legacy/sample.py) with bad rows appended at known lines."""

import json

import pytest

from halobestie.legacy.sample import write_dataset

T = "2026-01-05T16:00:00.000+07:00"

# (file, row) appended after the valid rows; the expected refusals are in test_import.py.
BAD_ROWS = [
    ("clients", {"id": 21, "phone": "12345", "created_at": T}),
    ("clients", {"id": 1, "phone": "081299999999", "created_at": T}),
    ("clients", {"id": 23, "phone": "081200000001", "created_at": T}),
    ("clients", {"id": 24, "phone": "081299999924", "created_at": "2026-01-05 09:00:00"}),
    ("clients", "not json"),
    ("besties", {"id": 5, "phone": "+6281100000005", "password_hash": "plaintext", "display_name": "B5",
                 "created_at": T}),
    ("devices", {"id": "dc21", "owner": "client", "owner_id": 21, "token": "fcm-x", "created_at": T}),
    (
        "sessions",
        {"id": "s31", "client_id": 1, "bestie_id": 1, "status": "active", "end_reason": "",
         "package_code": "curhat-15", "duration_seconds": 900, "price_idr": 15000,
         "created_at": T, "ended_at": T},
    ),
    (
        "sessions",
        {"id": "s32", "client_id": 21, "bestie_id": 1, "status": "ended", "end_reason": "expired",
         "package_code": "curhat-15", "duration_seconds": 900, "price_idr": 15000, "created_at": T,
         "accepted_at": T, "ended_at": T},
    ),
    ("messages", {"session_id": "s31", "seq": 1, "sender": "client", "body": "halo", "created_at": T}),
    ("messages", {"session_id": "s30", "seq": 7, "sender": "client", "body": "halo", "created_at": T}),
    ("messages", {"session_id": "s1", "seq": 6, "sender": "client", "body": "halo", "created_at": T}),
    (
        "payments",
        {"id": "p31", "session_id": "s1", "kind": "session", "amount_idr": 15000, "status": "pending",
         "external_id": "hb-node-31", "created_at": T},
    ),
    (
        "payments",
        {"id": "p32", "session_id": "s2", "kind": "extension", "amount_idr": 15000, "status": "paid",
         "paid_at": T, "external_id": "hb-node-1", "created_at": T},
    ),
    ("refunds", {"id": "r4", "payment_id": "p10", "amount_idr": 12000, "reason": "x", "status": "succeeded",
                 "created_at": T}),
    ("earnings", {"id": "e31", "session_id": "s1", "amount_idr": 1, "share_percent": 70, "created_at": T}),
    ("ratings", {"id": "g16", "session_id": "s1", "score": 6, "created_at": T}),
    ("reports", {"id": "x5", "session_id": "s7", "reporter": "client", "reason": "rude", "created_at": T}),
]  # fmt: skip


@pytest.fixture
def export_dir(tmp_path):
    """The generated export: 20 clients, 4 Besties, 30 ended sessions of 5 messages, payments,
    3 refunds, earnings, 15 ratings, 4 reports, 20 devices; then BAD_ROWS."""
    directory = tmp_path / "export"
    write_dataset(directory)
    for name, row in BAD_ROWS:
        with (directory / f"{name}.jsonl").open("a", encoding="utf-8") as file:
            file.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return directory


@pytest.fixture
def clean_export_dir(tmp_path):
    directory = tmp_path / "clean"
    write_dataset(directory, clients=3, besties=2, sessions=2, messages_per_session=3)
    return directory
