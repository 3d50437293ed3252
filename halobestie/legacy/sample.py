"""A generated export in the cutover format, for rehearsals, the tests and the bench.

Everything in it is valid; tests append their own bad rows. Files are written line by line, so a
million messages never sit in memory. Phones come in the three spellings the old backend had
(`08…`, `628…`, `+628…`) and times with a +07:00 offset, as a local export would give them.
"""

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import bcrypt

from halobestie.legacy.formats import ENTITIES

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
JAKARTA = timezone(timedelta(hours=7))
BESTIE_PASSWORD = "rahasia-node-123"


def _time(moment: datetime) -> str:
    """ISO-8601 with the Jakarta offset and milliseconds."""
    return moment.astimezone(JAKARTA).isoformat(timespec="milliseconds")


def client_phone(number: int) -> str:
    digits = f"812{number:08d}"
    return ("0" + digits, "62" + digits, "+62" + digits)[number % 3]


def bestie_phone(number: int) -> str:
    return f"+62811{number:08d}"


def write_dataset(
    directory,
    *,
    clients=20,
    besties=4,
    sessions=30,
    messages_per_session=5,
    bcrypt_rounds=4,
    password=BESTIE_PASSWORD,
) -> dict:
    """Write `<entity>.jsonl` files to `directory`; return how many rows each holds."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: (directory / f"{name}.jsonl").open("w", encoding="utf-8") for name in ENTITIES}
    counts = dict.fromkeys(ENTITIES, 0)

    def put(name, row):
        files[name].write(json.dumps(row, ensure_ascii=False) + "\n")
        counts[name] += 1

    try:
        password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt(bcrypt_rounds)).decode()
        for n in range(1, clients + 1):
            put(
                "clients",
                {
                    "id": n,
                    "phone": client_phone(n),
                    "display_name": f"Klien {n}",
                    "created_at": _time(START + timedelta(minutes=n)),
                },
            )
            put(
                "devices",
                {
                    "id": f"dc{n}",
                    "owner": "client",
                    "owner_id": n,
                    "token": f"fcm-client-{n}",
                    "platform": "android",
                    "created_at": _time(START + timedelta(minutes=n)),
                },
            )
        for n in range(1, besties + 1):
            put(
                "besties",
                {
                    "id": n,
                    "phone": bestie_phone(n),
                    "password_hash": password_hash,
                    "display_name": f"Bestie {n}",
                    "bio": "Pendengar yang sabar.",
                    "topics": ["keluarga", "kerja"],
                    "languages": ["id", "jv"],
                    "gender": "female" if n % 2 else "male",
                    "capacity": 3,
                    "created_at": _time(START),
                },
            )
        for n in range(1, sessions + 1):
            session_id = f"s{n}"
            client_id = (n - 1) % clients + 1
            bestie_id = (n - 1) % besties + 1
            created = START + timedelta(days=1, minutes=30 * n)
            accepted = created + timedelta(minutes=2)
            ended = accepted + timedelta(minutes=15)
            put(
                "sessions",
                {
                    "id": session_id,
                    "client_id": client_id,
                    "bestie_id": bestie_id,
                    "status": "ended",
                    "end_reason": "expired",
                    "package_code": "curhat-15",
                    "duration_seconds": 900,
                    "price_idr": 15000,
                    "created_at": _time(created),
                    "paid_at": _time(created + timedelta(minutes=1)),
                    "accepted_at": _time(accepted),
                    "ends_at": _time(ended),
                    "ended_at": _time(ended),
                },
            )
            for seq in range(1, messages_per_session + 1):
                sender = "client" if seq % 2 else "bestie"
                put(
                    "messages",
                    {
                        "session_id": session_id,
                        "seq": seq,
                        "sender": sender,
                        "body": f"Pesan {seq} dari {sender} di sesi {n}: aku lagi capek banget 😮‍💨",
                        "created_at": _time(accepted + timedelta(seconds=10 * seq)),
                    },
                )
            put(
                "payments",
                {
                    "id": f"p{n}",
                    "session_id": session_id,
                    "kind": "session",
                    "amount_idr": 15000,
                    "status": "paid",
                    "external_id": f"hb-node-{n}",
                    "invoice_id": f"inv-{n}",
                    "paid_at": _time(created + timedelta(minutes=1)),
                    "paid_amount_idr": 15000,
                    "payment_method": "QRIS",
                    "created_at": _time(created),
                },
            )
            if n % 10 == 0:
                put(
                    "refunds",
                    {
                        "id": f"r{n}",
                        "payment_id": f"p{n}",
                        "amount_idr": 5000,
                        "reason": "mitra_lost",
                        "status": "succeeded",
                        "created_at": _time(ended + timedelta(hours=1)),
                    },
                )
            put(
                "earnings",
                {
                    "id": f"e{n}",
                    "session_id": session_id,
                    "amount_idr": 10500,
                    "share_percent": 70,
                    "created_at": _time(ended),
                },
            )
            if n % 2 == 0:
                put(
                    "ratings",
                    {
                        "id": f"g{n}",
                        "session_id": session_id,
                        "score": n % 5 + 1,
                        "comment": "Makasih, lega banget.",
                        "created_at": _time(ended + timedelta(minutes=1)),
                    },
                )
            if n % 7 == 0:
                put(
                    "reports",
                    {
                        "id": f"x{n}",
                        "session_id": session_id,
                        "reporter": "client",
                        "reason": "rude",
                        "detail": "Kurang sopan.",
                        "created_at": _time(ended + timedelta(minutes=2)),
                    },
                )
    finally:
        for file in files.values():
            file.close()
    return counts
