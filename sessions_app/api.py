"""Sessions REST API under /api/v1/: one view per operation."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from halobestie.accounts.permissions import IsClient, IsClientOrMitra, IsMitra
from halobestie.runtime.selectors import get_config
from sessions_app import blocking, erasure, lifecycle, selectors
from sessions_app.models import Status
from sessions_app.serializers import MessageOut, SessionOut, session_payload
from sessions_app.tickets import ticket_issue


def _session(request, session_id):
    return selectors.session_get_for_participant(session_id=session_id, user=request.user)


class SessionCreateIn(serializers.Serializer):
    package = serializers.CharField(max_length=32)
    mitra = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="Bestie yang diminta (opsional): dia mendapat tawaran pertama.",
    )
    allow_any_mitra = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Dengan `mitra`: false = hanya Bestie ini (tanpa Bestie lain; bila dia menolak atau "
        "tidak sempat sampai batas waktu pencarian, sesi berakhir `unmatched` dan dana dikembalikan). "
        "true (bawaan) = Bestie lain boleh mengambil bila dia penuh, offline atau menolak.",
    )
    voucher_code = serializers.CharField(
        max_length=32, required=False, allow_blank=True, allow_null=True, help_text="Kode promo (opsional)."
    )
    # Preferences for the Bestie, each optional; checked by preferences_clean (Indonesian errors).
    topics = serializers.ListField(
        child=serializers.CharField(max_length=50, allow_blank=True), required=False, max_length=5
    )
    gender = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=12, help_text="female atau male."
    )
    language = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=8)


class SessionListCreateApi(APIView):
    permission_classes = [IsClientOrMitra]

    def get_permissions(self):
        return [IsClient()] if self.request.method == "POST" else [IsClientOrMitra()]

    @extend_schema(
        operation_id="sessions_list",
        parameters=[
            OpenApiParameter("status", str, description="Comma-separated statuses to filter by."),
            OpenApiParameter("limit", int, description="Sessions per page (default 20)."),
            OpenApiParameter("offset", int, description="Sessions to skip."),
        ],
        # The answer is a page (LimitOffsetPagination), as the fuzzer found the schema must say.
        responses=inline_serializer(
            "PaginatedSessionOutList",
            {
                "count": serializers.IntegerField(),
                "next": serializers.URLField(allow_null=True),
                "previous": serializers.URLField(allow_null=True),
                "results": SessionOut(many=True),
            },
        ),
    )
    def get(self, request):
        wanted = [s for s in request.query_params.get("status", "").split(",") if s]
        unknown = [s for s in wanted if s not in Status.values]
        if unknown:
            raise serializers.ValidationError({"status": [f"Status tidak dikenal: {', '.join(unknown)}"]})
        query = selectors.session_list_for_user(user=request.user, status=wanted or None)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(query, request, view=self)
        return paginator.get_paginated_response(SessionOut(page, many=True).data)

    @extend_schema(operation_id="sessions_create", request=SessionCreateIn, responses={201: SessionOut})
    def post(self, request):
        data = SessionCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        session = lifecycle.session_create(
            client=request.user,
            package_code=data.validated_data["package"],
            mitra_id=data.validated_data.get("mitra"),
            allow_any_mitra=data.validated_data["allow_any_mitra"],
            voucher_code=data.validated_data.get("voucher_code"),
            topics=data.validated_data.get("topics"),
            gender=data.validated_data.get("gender"),
            language=data.validated_data.get("language"),
        )
        return Response(session_payload(session), status=status.HTTP_201_CREATED)


class SessionDetailApi(APIView):
    permission_classes = [IsClientOrMitra]

    @extend_schema(operation_id="sessions_retrieve", responses=SessionOut)
    def get(self, request, session_id):
        return Response(session_payload(_session(request, session_id)))


class SessionAcceptApi(APIView):
    permission_classes = [IsMitra]

    @extend_schema(operation_id="sessions_accept", request=None, responses=SessionOut)
    def post(self, request, session_id):
        session = _session(request, session_id)
        session = lifecycle.session_accept(session_id=session.id, mitra=request.user.mitra)
        return Response(session_payload(session))


class SessionDeclineApi(APIView):
    permission_classes = [IsMitra]

    @extend_schema(operation_id="sessions_decline", request=None, responses=SessionOut)
    def post(self, request, session_id):
        session = _session(request, session_id)
        session = lifecycle.session_decline(session_id=session.id, mitra=request.user.mitra)
        return Response(session_payload(session))


class SessionEndApi(APIView):
    permission_classes = [IsClientOrMitra]

    @extend_schema(operation_id="sessions_end", request=None, responses=SessionOut)
    def post(self, request, session_id):
        session = _session(request, session_id)
        session = lifecycle.session_end(session_id=session.id, actor=request.user)
        return Response(session_payload(session))


class SessionExtendIn(serializers.Serializer):
    package = serializers.CharField(max_length=32)
    voucher_code = serializers.CharField(
        max_length=32, required=False, allow_blank=True, allow_null=True, help_text="Kode promo (opsional)."
    )


class SessionExtendApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(
        operation_id="sessions_extend",
        description=(
            "Opens the extension's invoice; `ends_at` moves when it is paid. 409 `session_not_active`; "
            "409 `extension_blocked_by_booking` when the extension would run into a booking of the "
            "session's Bestie (its start less `booking_buffer_minutes`); an extension paid after such a "
            "booking was made is refunded in full."
        ),
        request=SessionExtendIn,
        responses={
            201: inline_serializer(
                "ExtensionPayment",
                {
                    "id": serializers.CharField(),
                    "kind": serializers.CharField(),
                    "status": serializers.CharField(),
                    "amount_idr": serializers.IntegerField(),
                    "discount_idr": serializers.IntegerField(),
                    "invoice_url": serializers.CharField(),
                    "expires_at": serializers.DateTimeField(allow_null=True),
                },
            )
        },
    )
    def post(self, request, session_id):
        data = SessionExtendIn(data=request.data)
        data.is_valid(raise_exception=True)
        session = _session(request, session_id)
        payment = lifecycle.session_extension_request(
            session_id=session.id,
            client=request.user,
            package_code=data.validated_data["package"],
            voucher_code=data.validated_data.get("voucher_code"),
        )
        return Response(
            {
                "id": str(payment.id),
                "kind": payment.kind,
                "status": payment.status,
                "amount_idr": payment.amount_idr,
                "discount_idr": payment.discount_idr,
                "invoice_url": payment.invoice_url,
                "expires_at": payment.expires_at,
            },
            status=status.HTTP_201_CREATED,
        )


class RatingIn(serializers.Serializer):
    score = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class RatingOut(serializers.Serializer):
    score = serializers.IntegerField()
    comment = serializers.CharField()
    created_at = serializers.DateTimeField()


class SessionRatingApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(operation_id="sessions_rate", request=RatingIn, responses={201: RatingOut})
    def post(self, request, session_id):
        data = RatingIn(data=request.data)
        data.is_valid(raise_exception=True)
        session = _session(request, session_id)
        rating = lifecycle.session_rate(session_id=session.id, client=request.user, **data.validated_data)
        return Response(RatingOut(rating).data, status=status.HTTP_201_CREATED)


class ReportIn(serializers.Serializer):
    reason = serializers.ChoiceField(choices=lifecycle.REPORT_REASONS)
    detail = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class ReportOut(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


class SessionReportApi(APIView):
    permission_classes = [IsClientOrMitra]

    @extend_schema(operation_id="sessions_report", request=ReportIn, responses={201: ReportOut})
    def post(self, request, session_id):
        data = ReportIn(data=request.data)
        data.is_valid(raise_exception=True)
        session = _session(request, session_id)
        report = lifecycle.session_report(session_id=session.id, reporter=request.user, **data.validated_data)
        return Response(ReportOut(report).data, status=status.HTTP_201_CREATED)


class BlockOut(serializers.Serializer):
    session_id = serializers.UUIDField(allow_null=True)
    blocked_by = serializers.ChoiceField(choices=["client", "mitra"])
    created_at = serializers.DateTimeField()


class SessionBlockApi(APIView):
    permission_classes = [IsClientOrMitra]

    @extend_schema(
        operation_id="sessions_block",
        description=(
            "Either side of an ended session blocks the other: the two are never matched again "
            "(a client who asks for a Bestie they blocked, or who was blocked, gets 404 "
            "`mitra_not_found`). 201 for a new block, 200 when the pair was blocked already "
            "(by either side). 409 `session_not_ended` before the end."
        ),
        request=None,
        responses={201: BlockOut, 200: BlockOut},
    )
    def post(self, request, session_id):
        session = _session(request, session_id)
        existed = blocking.is_blocked(client_id=session.client_id, mitra_id=session.mitra_id)
        block = blocking.block_after_session(session_id=session.id, user=request.user)
        return Response(
            BlockOut(block).data, status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED
        )


class MessagesQuery(serializers.Serializer):
    after_seq = serializers.IntegerField(min_value=0, required=False, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=500, required=False, default=100)


class SessionMessagesApi(APIView):
    permission_classes = [IsClientOrMitra]

    def get_permissions(self):
        return [IsClient()] if self.request.method == "DELETE" else [IsClientOrMitra()]

    @extend_schema(
        operation_id="sessions_messages_erase",
        description=(
            "The client erases the transcript of one of their closed sessions (ended, cancelled, "
            "unmatched) at once: every message keeps its id and seq as a tombstone with an empty "
            "body. 409 `session_not_ended` while the session is open. A repeat erases 0."
        ),
        request=None,
        responses={
            200: inline_serializer("TranscriptErased", {"erased_messages": serializers.IntegerField()})
        },
    )
    def delete(self, request, session_id):
        erased = erasure.transcript_erase(session_id=session_id, client=request.user)
        return Response({"erased_messages": erased})

    @extend_schema(
        operation_id="sessions_messages",
        parameters=[
            OpenApiParameter("after_seq", int, description="Only messages with a greater seq."),
            OpenApiParameter("limit", int, description="At most this many (1–500, default 100)."),
        ],
        responses=inline_serializer(
            "MessagePage", {"results": MessageOut(many=True), "has_more": serializers.BooleanField()}
        ),
    )
    def get(self, request, session_id):
        query = MessagesQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        session = _session(request, session_id)
        limit = query.validated_data["limit"]
        messages = selectors.messages_after(
            session=session, after_seq=query.validated_data["after_seq"], limit=limit + 1
        )
        return Response(
            {"results": MessageOut(messages[:limit], many=True).data, "has_more": len(messages) > limit}
        )


class EarningsSessionOut(serializers.Serializer):
    session_id = serializers.UUIDField()
    date = serializers.DateTimeField(help_text="Waktu sesi berakhir.")
    package = serializers.CharField()
    end_reason = serializers.CharField()
    paid_minutes = serializers.IntegerField(help_text="Menit yang dibayar klien (paket + perpanjangan).")
    minutes_served = serializers.IntegerField(
        help_text="Menit yang benar-benar dilayani (dibulatkan ke bawah)."
    )
    gross_idr = serializers.IntegerField(help_text="Harga yang dibayar klien (paket + perpanjangan).")
    net_idr = serializers.IntegerField(help_text="Yang tetap dibayar klien setelah refund.")
    share_percent = serializers.IntegerField()
    earned_idr = serializers.IntegerField(help_text="Bagian Bestie saat sesi selesai.")
    reversals_idr = serializers.IntegerField(
        help_text="Pembalikan karena refund sesudahnya (negatif) dan koreksi."
    )
    total_idr = serializers.IntegerField(help_text="earned_idr + reversals_idr.")


class EarningsSessionPage(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = EarningsSessionOut(many=True)


class EarningsQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, required=False, default=20)
    offset = serializers.IntegerField(min_value=0, required=False, default=0)


class EarningsPagination(LimitOffsetPagination):
    default_limit = 20
    max_limit = 100


class EarningsApi(APIView):
    """The mitra's earnings: totals by period (Asia/Jakarta days, weeks from Monday, months; every
    total is the sum of the ledger rows, reversals included) and a statement per session, newest
    first (`limit`/`offset`)."""

    permission_classes = [IsMitra]

    @extend_schema(
        operation_id="mitra_earnings",
        parameters=[EarningsQuery],
        responses=inline_serializer(
            "Earnings",
            {
                "today_idr": serializers.IntegerField(),
                "this_week_idr": serializers.IntegerField(),
                "this_month_idr": serializers.IntegerField(),
                "all_time_idr": serializers.IntegerField(),
                "sessions_count": serializers.IntegerField(),
                "share_percent": serializers.IntegerField(),
                "sessions": EarningsSessionPage(),
            },
        ),
    )
    def get(self, request):
        EarningsQuery(data=request.query_params).is_valid(raise_exception=True)
        mitra = request.user.mitra
        totals = selectors.earnings_totals(mitra=mitra)
        paginator = EarningsPagination()
        page = paginator.paginate_queryset(selectors.mitra_statement(mitra=mitra), request, view=self)
        rows = [
            {
                "session_id": session.id,
                "date": session.ended_at,
                "package": session.package_code,
                "end_reason": session.end_reason,
                "paid_minutes": session.paid_minutes,
                "minutes_served": session.served_minutes,
                "gross_idr": session.price_idr + session.extensions_total_idr,
                "net_idr": session.net_idr,
                "share_percent": session.share_percent,
                "earned_idr": session.earned_idr,
                "reversals_idr": session.reversals_idr,
                "total_idr": session.total_idr,
            }
            for session in page
        ]
        statement = paginator.get_paginated_response(EarningsSessionOut(rows, many=True).data).data
        return Response({**totals, "share_percent": get_config().mitra_share_percent, "sessions": statement})


class RealtimeTicketOut(serializers.Serializer):
    ticket = serializers.CharField()
    expires_at = serializers.DateTimeField()


class RealtimeTicketApi(APIView):
    """A one-use ticket (valid 60 s) for opening the WebSocket as `/ws/v1/?ticket=…`, for
    clients that cannot send an Authorization header there (docs/realtime.md)."""

    permission_classes = [IsClientOrMitra]

    @extend_schema(operation_id="realtime_ticket", request=None, responses={201: RealtimeTicketOut})
    def post(self, request):
        ticket, expires_at = ticket_issue(user=request.user)
        data = RealtimeTicketOut({"ticket": ticket, "expires_at": expires_at}).data
        return Response(data, status=status.HTTP_201_CREATED)
