"""Which messages flag their session for staff, and the flag itself (stored with the message).

- A **client's** message that matches the crisis lexicon (runtime config `crisis_words`, minus
  `crisis_exclusions`; sessions_app/safety/crisis.py).
- A **Bestie's** message that suggests the client is in danger: the crisis lexicon as well (a
  Bestie asking "kamu kepikiran bunuh diri?") or `mitra_alert_words` ("jauhkan benda tajam").

The flag is written in the same transaction as the message: on PostgreSQL inside the single
statement of chat._INSERT_SQL, elsewhere by `flag_with_message` inside chat._store_orm. What
follows a flag (the hotline, free minutes, live events) is sessions_app/handoff.py.
"""

from dataclasses import dataclass

from django.db.models import Case, F, Q, Value, When

from sessions_app.models import ChatSession, SessionEvent
from sessions_app.safety import crisis_words_found

CLIENT = "client"
MITRA = "mitra"


@dataclass(frozen=True)
class CrisisScan:
    words: tuple = ()
    source: str = ""  # "client" / "mitra" when the message flags the session


def crisis_scan(*, body: str, is_client: bool, config) -> CrisisScan:
    words = tuple(crisis_words_found(body, config.crisis_words, config.crisis_exclusions))
    if not is_client:
        words += tuple(crisis_words_found(body, config.mitra_alert_words, config.crisis_exclusions))
    return CrisisScan(words=words, source=(CLIENT if is_client else MITRA) if words else "")


def flag_with_message(*, session, message, source: str) -> None:
    """The ORM twin of the flagging part of chat._INSERT_SQL. Precondition: inside the
    transaction that stores `message`, with the session row locked."""
    ChatSession.objects.filter(pk=session.pk).update(
        is_flagged=True,
        flagged_at=Case(
            When(Q(flagged_at__isnull=True), then=Value(message.created_at)), default=F("flagged_at")
        ),
        needs_staff_attention=True,
        crisis_followup_pending=True,
    )
    SessionEvent.objects.create(
        session=session, kind="crisis_flagged", data={"message_id": message.id, "source": source}
    )
