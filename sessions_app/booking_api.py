"""Booked sessions REST API under /api/v1/ (sessions_app/bookings.py): slots, bookings for
clients, and the Bestie's upcoming bookings."""

from datetime import UTC, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from halobestie.accounts.permissions import IsClient, IsMitra
from halobestie.errors import NotFound, ServiceError
from halobestie.runtime.selectors import get_config
from mitras.models import Mitra
from sessions_app import booking_effects, booking_slots, bookings
from sessions_app.models import Booking, Status
from sessions_app.serializers import session_payload

_JAKARTA = booking_slots.JAKARTA


class BookingMitraOut(serializers.Serializer):
    id = serializers.IntegerField()
    display_name = serializers.CharField()


class BookingOut(serializers.Serializer):
    id = serializers.UUIDField()
    state = serializers.ChoiceField(
        ["held", "confirmed", "started", "mitra_absent", "finding_bestie", "completed", "cancelled"],
        help_text="held = menunggu pembayaran; confirmed = dibayar; mitra_absent = Bestie tidak hadir, "
        "klien memilih refund (cancel) atau Bestie lain (fallback).",
    )
    session_id = serializers.UUIDField()
    session_status = serializers.CharField()
    mitra = BookingMitraOut()
    client_display_name = serializers.CharField()
    package_code = serializers.CharField()
    duration_minutes = serializers.IntegerField()
    price_idr = serializers.IntegerField()
    discount_idr = serializers.IntegerField()
    starts_at = serializers.DateTimeField(help_text="UTC.")
    ends_at = serializers.DateTimeField(help_text="UTC.")
    starts_at_local = serializers.DateTimeField(help_text="Asia/Jakarta (+07:00).")
    hold_expires_at = serializers.DateTimeField(allow_null=True)
    mitra_absent_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class BookingCreatedOut(BookingOut):
    payment = serializers.DictField(
        allow_null=True, help_text="Invoice to pay (invoice_url), or null if free."
    )


def _payload(booking, *, with_payment=False):
    data = booking_effects.booking_payload(booking)
    if with_payment:
        data["payment"] = session_payload(booking.session).get("payment")
    return data


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 instant that states its offset (Z or +07:00): a booking time without one
    would be guessed, and a guess may be seven hours off."""

    def to_internal_value(self, value):
        try:
            parsed = parse_datetime(value) if isinstance(value, str) and "\x00" not in value else None
        except ValueError:
            parsed = None  # well formed but impossible (month 13): DateTimeField says why
        if parsed is not None and parsed.tzinfo is None:
            self.fail("naive")
        return super().to_internal_value(value)

    default_error_messages = {"naive": "Sertakan zona waktu, mis. 2026-12-01T19:00:00+07:00."}


class SlotsQuery(serializers.Serializer):
    package = serializers.CharField(max_length=32)
    # `from` is a Python keyword: the field is renamed below.
    # With their offset, as `starts_at` on a booking: a time without one would be guessed.
    from_ = AwareDateTimeField(required=False)
    to = AwareDateTimeField(required=False)

    def to_internal_value(self, data):
        data = {
            **{k: data.get(k) for k in ("package", "to") if data.get(k) is not None},
            **({"from_": data.get("from")} if data.get("from") is not None else {}),
        }
        return super().to_internal_value(data)


class MitraSlotsApi(APIView):
    """Bookable starts of a Bestie for a package length (from their working hours, less other
    bookings and the buffer, inside the lead time and the horizon)."""

    permission_classes = [AllowAny]
    authentication_classes = []  # public, as the profiles: a token is not even looked at

    @extend_schema(
        operation_id="mitras_slots",
        parameters=[
            OpenApiParameter("package", str, required=True, description="Kode paket (panjang sesi)."),
            OpenApiParameter("from", str, description="ISO 8601 dengan zona waktu; bawaan: sekarang."),
            OpenApiParameter("to", str, description="ISO 8601; bawaan: from + 7 hari; maks. 31 hari."),
        ],
        responses=inline_serializer(
            "MitraSlots",
            {
                "mitra_id": serializers.IntegerField(),
                "package": serializers.CharField(),
                "duration_minutes": serializers.IntegerField(),
                "timezone": serializers.CharField(),
                "slots": inline_serializer(
                    "Slot",
                    {
                        "starts_at": serializers.DateTimeField(),
                        "starts_at_local": serializers.DateTimeField(),
                    },
                    many=True,
                ),
            },
        ),
    )
    def get(self, request, mitra_id):
        query = SlotsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        config = get_config()
        package = config.package(query.validated_data["package"])
        if package is None:
            raise ServiceError(
                "Paket tidak dikenal.", code="unknown_package", fields={"package": ["Paket tidak dikenal."]}
            )
        mitra = Mitra.objects.filter(pk=mitra_id, deactivated_at__isnull=True).first()
        if mitra is None:
            raise NotFound("Bestie tidak ditemukan.", code="mitra_not_found")
        now = timezone.now()
        start = query.validated_data.get("from_") or now
        try:
            end = query.validated_data.get("to") or start + timedelta(days=7)
        except OverflowError:  # `from` in the last week of year 9999
            end = start
        if end <= start or end - start > booking_slots.MAX_RANGE:
            raise ServiceError(
                "Rentang waktu 1 detik sampai 31 hari.",
                code="invalid_range",
                fields={"to": ["Rentang waktu 1 detik sampai 31 hari."]},
            )
        starts = booking_slots.bookable_starts(
            mitra=mitra,
            duration_seconds=package.duration_seconds,
            start=start,
            end=end,
            now=now,
            config=config,
        )
        return Response(
            {
                "mitra_id": mitra.id,
                "package": package.code,
                "duration_minutes": package.duration_seconds // 60,
                "timezone": "Asia/Jakarta",
                "slots": [
                    {
                        "starts_at": s.astimezone(UTC).isoformat(),
                        "starts_at_local": s.astimezone(_JAKARTA).isoformat(),
                    }
                    for s in starts
                ],
            }
        )


class BookingCreateIn(serializers.Serializer):
    mitra = serializers.IntegerField(min_value=1)
    starts_at = AwareDateTimeField(help_text="Salah satu `starts_at` dari /mitras/{id}/slots.")
    package = serializers.CharField(max_length=32)
    voucher_code = serializers.CharField(max_length=32, required=False, allow_blank=True, allow_null=True)


class BookingRescheduleIn(serializers.Serializer):
    starts_at = AwareDateTimeField()


class BookingPage(LimitOffsetPagination):
    default_limit = 20
    max_limit = 100


_PAGE = {
    "count": serializers.IntegerField(),
    "next": serializers.URLField(allow_null=True),
    "previous": serializers.URLField(allow_null=True),
}


class BookingListCreateApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(
        operation_id="bookings_list",
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses=inline_serializer("PaginatedBookingList", {**_PAGE, "results": BookingOut(many=True)}),
    )
    def get(self, request):
        query = Booking.objects.select_related("session", "mitra", "client").filter(client=request.user)
        paginator = BookingPage()
        page = paginator.paginate_queryset(query.order_by("-starts_at"), request, view=self)
        return paginator.get_paginated_response([_payload(b) for b in page])

    @extend_schema(
        operation_id="bookings_create", request=BookingCreateIn, responses={201: BookingCreatedOut}
    )
    def post(self, request):
        data = BookingCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        booking = bookings.booking_create(
            client=request.user,
            mitra_id=data.validated_data["mitra"],
            starts_at=data.validated_data["starts_at"],
            package_code=data.validated_data["package"],
            voucher_code=data.validated_data.get("voucher_code"),
        )
        return Response(_payload(booking, with_payment=True), status=status.HTTP_201_CREATED)


class BookingDetailApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(operation_id="bookings_retrieve", responses=BookingCreatedOut)
    def get(self, request, booking_id):
        booking = bookings.booking_for_client(client=request.user, booking_id=booking_id)
        return Response(_payload(booking, with_payment=True))


class BookingCancelApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(operation_id="bookings_cancel", request=None, responses=BookingOut)
    def post(self, request, booking_id):
        return Response(
            _payload(bookings.booking_cancel_by_client(client=request.user, booking_id=booking_id))
        )


class BookingRescheduleApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(operation_id="bookings_reschedule", request=BookingRescheduleIn, responses=BookingOut)
    def post(self, request, booking_id):
        data = BookingRescheduleIn(data=request.data)
        data.is_valid(raise_exception=True)
        booking = bookings.booking_reschedule(
            client=request.user, booking_id=booking_id, starts_at=data.validated_data["starts_at"]
        )
        return Response(_payload(booking))


class BookingFallbackApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(operation_id="bookings_fallback", request=None, responses=BookingOut)
    def post(self, request, booking_id):
        return Response(_payload(bookings.booking_fallback(client=request.user, booking_id=booking_id)))


class MitraBookingListApi(APIView):
    """The Bestie's bookings from now on (held or confirmed, and those running), soonest first;
    the client appears by display name only."""

    permission_classes = [IsMitra]

    @extend_schema(
        operation_id="mitra_bookings",
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses=inline_serializer("PaginatedMitraBookingList", {**_PAGE, "results": BookingOut(many=True)}),
    )
    def get(self, request):
        now = timezone.now()
        query = (
            booking_slots.holding_bookings(now=now)
            .filter(mitra=request.user.mitra, ends_at__gt=now)
            .exclude(session__status__in=[Status.ENDED])
            .select_related("session", "mitra", "client")
            .order_by("starts_at")
        )
        paginator = BookingPage()
        page = paginator.paginate_queryset(query, request, view=self)
        return paginator.get_paginated_response([_payload(b) for b in page])


class MitraBookingCancelApi(APIView):
    permission_classes = [IsMitra]

    @extend_schema(operation_id="mitra_bookings_cancel", request=None, responses=BookingOut)
    def post(self, request, booking_id):
        booking = bookings.booking_cancel_by_mitra(mitra=request.user.mitra, booking_id=booking_id)
        return Response(_payload(booking))
