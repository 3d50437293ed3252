"""Advisory locks and the few raw SQL statements outside the ORM, in one place.

Transaction-level advisory locks (released at commit or rollback) serialise work that no single
row can: the queue dispatch, a sliding-window cap per key. On SQLite (the embedded newcomer
path: one writer at a time anyway) they are no-ops.
"""

from django.db import connection

# The advisory lock that serialises queue dispatch ("HALO").
DISPATCH_LOCK_KEY = 0x4841_4C4F
# Booking a ledger row (shared) against recording a payout as paid (exclusive) ("HBPY").
PAYOUT_LOCK_KEY = 0x4842_5059


def advisory_xact_lock(key: int) -> None:
    """Hold the transaction-level advisory lock `key` until this transaction ends.
    Precondition: inside transaction.atomic()."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def advisory_xact_lock_shared(key: int) -> None:
    """Hold the advisory lock `key` in shared mode until this transaction ends: shared holders do
    not wait for each other, only for (and block) an exclusive `advisory_xact_lock(key)`.
    Precondition: inside transaction.atomic()."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [key])


def advisory_xact_lock_text(key: str) -> None:
    """The same for a text key (hashed by Postgres to 64 bits).
    Precondition: inside transaction.atomic()."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


def database_ping() -> None:
    """One round trip to the database (readiness probes). Raises the driver's error."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def realtime_ticket_use(*, token_hash: str, now) -> int | None:
    """Use up an unused, unexpired realtime ticket in one statement (two sockets racing with one
    ticket: exactly one gets the user id). Returns the ticket's user id or None."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE sessions_app_realtimeticket SET used_at = %s "
            "WHERE token_hash = %s AND used_at IS NULL AND expires_at > %s RETURNING user_id",
            [now, token_hash, now],
        )
        row = cursor.fetchone()
    return row[0] if row else None
