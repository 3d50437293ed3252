"""Output shapes of a session, shared by the REST API and the live events."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from payments.models import PaymentKind, PaymentStatus
from sessions_app.models import ChatSession, Message
from sessions_app.preferences import preferences_out
from sessions_app.selectors import payment_latest_for_session, queue_position
from sessions_app.wait_inputs import eta_seconds


class SessionMitraOut(serializers.Serializer):
    id = serializers.IntegerField()
    display_name = serializers.CharField()
    avatar_url = serializers.CharField()


class PreferencesOut(serializers.Serializer):
    topics = serializers.ListField(child=serializers.CharField())
    gender = serializers.CharField(allow_null=True)
    language = serializers.CharField(allow_null=True)
    held = serializers.ListField(child=serializers.CharField(), help_text="Masih dipegang.")
    relaxed = serializers.ListField(child=serializers.CharField(), help_text="Sudah dilepas, berurutan.")


class SessionPaymentOut(serializers.Serializer):
    """The session's latest payment awaiting action (a package or an extension)."""

    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=PaymentKind.choices)
    status = serializers.ChoiceField(choices=PaymentStatus.choices)
    amount_idr = serializers.IntegerField(help_text="Whole rupiah to pay (after any voucher).")
    discount_idr = serializers.IntegerField(help_text="Whole rupiah a voucher took off.")
    invoice_url = serializers.CharField(help_text="The page the app opens to pay.")
    expires_at = serializers.DateTimeField(allow_null=True)


class SessionOut(serializers.ModelSerializer):
    mitra = SessionMitraOut(allow_null=True)
    requested_mitra_id = serializers.IntegerField(allow_null=True)
    client_display_name = serializers.SerializerMethodField()
    duration_minutes = serializers.SerializerMethodField()
    queue_position = serializers.SerializerMethodField()
    eta_seconds = serializers.SerializerMethodField(
        help_text="Perkiraan detik menunggu sampai ditawarkan ke Bestie (null bila tidak menunggu; "
        "cara menghitung: docs/realtime.md)."
    )
    payment = serializers.SerializerMethodField()
    is_rated = serializers.SerializerMethodField()
    preferences = serializers.SerializerMethodField()

    class Meta:
        model = ChatSession
        fields = [
            "id", "status", "end_reason", "package_code", "duration_minutes", "price_idr",
            "extended_seconds", "extensions_total_idr", "discount_idr", "mitra", "requested_mitra_id",
            "allow_any_mitra",
            "client_display_name", "created_at", "paid_at", "offered_at", "offer_expires_at",
            "accepted_at", "ends_at", "ended_at", "mitra_lost_at", "last_seq", "queue_position",
            "eta_seconds", "payment", "is_rated", "preferences",
        ]  # fmt: skip

    def get_client_display_name(self, session) -> str:
        return session.client.display_name or "Klien"

    def get_duration_minutes(self, session) -> int:
        return session.duration_seconds // 60

    def get_queue_position(self, session) -> int | None:
        return queue_position(session=session)

    def get_eta_seconds(self, session) -> int | None:
        return eta_seconds(session=session)

    @extend_schema_field(SessionPaymentOut(allow_null=True))
    def get_payment(self, session) -> dict | None:
        """The latest payment awaiting action (the app opens its invoice_url), if any."""
        payment = payment_latest_for_session(session=session)
        if payment is None:
            return None
        return {
            "id": str(payment.id),
            "kind": payment.kind,
            "status": payment.status,
            "amount_idr": payment.amount_idr,
            "discount_idr": payment.discount_idr,
            "invoice_url": payment.invoice_url,
            "expires_at": payment.expires_at.isoformat() if payment.expires_at else None,
        }

    def get_is_rated(self, session) -> bool:
        return hasattr(session, "rating")

    @extend_schema_field(PreferencesOut)
    def get_preferences(self, session) -> dict:
        return preferences_out(session)


class MessageOut(serializers.ModelSerializer):
    session_id = serializers.UUIDField()
    sender_id = serializers.IntegerField(allow_null=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "session_id",
            "seq",
            "sender_id",
            "kind",
            "body",
            "client_msg_id",
            "is_masked",
            "created_at",
        ]


def session_payload(session) -> dict:
    """The session as the apps see it (REST bodies and `session.updated` frames)."""
    return SessionOut(session).data


def session_payloads(sessions) -> list:
    """session_payload of each session, with one serializer for all (its fields are built once:
    a dispatch's or a broadcast's frames, not a ModelSerializer set up per session)."""
    return SessionOut(list(sessions), many=True).data
