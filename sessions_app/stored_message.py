"""What the chat stores and sends: the sender, the stored message (built from a row in ONE place,
`StoredMessage.of`) and its WebSocket frames (docs/realtime.md)."""

import zoneinfo
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from rest_framework import serializers


@dataclass(frozen=True)
class Sender:
    """Who sends: the user, and the mitra row id when the user is a mitra."""

    user_id: int
    mitra_id: int | None = None


@dataclass(frozen=True)
class StoredMessage:
    id: int
    session_id: str
    seq: int
    sender_id: int | None
    kind: str
    body: str
    client_msg_id: str
    is_masked: bool
    created_at: datetime
    # The participants' user ids, so the caller can broadcast without another query.
    client_user_id: int
    mitra_user_id: int | None
    # True when this is an earlier message with the same client_msg_id (a resend).
    is_duplicate: bool = False
    # Crisis phrases found in what the sender wrote (before masking); [] if none.
    crisis_words: tuple = ()
    # "client" / "mitra" when this message flagged the session (in its own transaction), else "".
    crisis_source: str = ""

    @classmethod
    def of(cls, message, *, client_user_id, mitra_user_id, is_duplicate=False) -> "StoredMessage":
        """From a stored Message row (the one place a StoredMessage is built from a row)."""
        return cls(
            id=message.id,
            session_id=str(message.session_id),
            seq=message.seq,
            sender_id=message.sender_id,
            kind=message.kind,
            body=message.body,
            client_msg_id=message.client_msg_id,
            is_masked=message.is_masked,
            created_at=message.created_at,
            client_user_id=client_user_id,
            mitra_user_id=mitra_user_id,
            is_duplicate=is_duplicate,
        )


# One field for every frame, with the zone given: building a DRF field per message and asking for
# the current zone (an asgiref Local) cost ≈ 5 % of the message path's CPU (py-spy, issue 22). The
# project never activates another zone, so this is the REST API's rendering.
_DATETIME_FIELD = serializers.DateTimeField(default_timezone=zoneinfo.ZoneInfo(settings.TIME_ZONE))


def _timestamp(value: datetime) -> str:
    """The same rendering as the REST API (DRF, Asia/Jakarta offset)."""
    return _DATETIME_FIELD.to_representation(value)


def message_frame(message: StoredMessage) -> dict:
    return {
        "type": "message.new",
        "id": message.id,
        "session_id": str(message.session_id),
        "seq": message.seq,
        "sender_id": message.sender_id,
        "kind": message.kind,
        "body": message.body,
        "client_msg_id": message.client_msg_id,
        "created_at": _timestamp(message.created_at),
        "is_masked": message.is_masked,
    }


def ack_frame(message: StoredMessage) -> dict:
    return {
        "type": "message.ack",
        "client_msg_id": message.client_msg_id,
        "id": message.id,
        "seq": message.seq,
        "created_at": _timestamp(message.created_at),
        "session_id": str(message.session_id),
        "is_masked": message.is_masked,
    }
