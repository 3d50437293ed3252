"""Xendit's callbacks: POST /webhooks/xendit/invoice and /webhooks/xendit/refund (public listener).

Authenticated by the `x-callback-token` header only (no JWT, no CSRF). The answer is quick: the
decision is one short transaction, and live events and pushes go out after commit.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from halobestie.server.safe_input import SafeJSONParser
from payments import services

TOKEN_PARAMETER = OpenApiParameter(
    "x-callback-token", str, OpenApiParameter.HEADER, required=True,
    description="The callback verification token of the Xendit dashboard (XENDIT_WEBHOOK_TOKEN).",
)  # fmt: skip

CallbackAck = inline_serializer(
    "PaymentCallbackAck",
    {
        "received": serializers.BooleanField(),
        "outcome": serializers.CharField(help_text="What was made of it: applied, duplicate, …"),
    },
)


def _body(request):
    try:
        return request.data
    except ParseError:
        return None  # the handler checks the token first, then refuses the body


class _CallbackApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = [SafeJSONParser]
    throttle_classes = []  # Xendit's retries come from few addresses; the token authenticates
    handler = None

    def post(self, request):
        callback = type(self).handler(
            token=request.headers.get("x-callback-token"), body=_body(request), headers=request.headers
        )
        return Response({"received": True, "outcome": callback.outcome})


class InvoiceCallbackApi(_CallbackApi):
    handler = staticmethod(services.invoice_callback_receive)

    @extend_schema(
        operation_id="xendit_invoice_callback",
        tags=["webhooks"],
        parameters=[TOKEN_PARAMETER],
        request=inline_serializer(
            "XenditInvoiceCallback",
            {
                "id": serializers.CharField(),
                "external_id": serializers.CharField(),
                "status": serializers.ChoiceField(choices=services.INVOICE_STATUSES),
                "amount": serializers.IntegerField(),
                "paid_amount": serializers.IntegerField(required=False),
                "paid_at": serializers.DateTimeField(required=False),
                "payment_method": serializers.CharField(required=False),
                "payment_channel": serializers.CharField(required=False),
            },
        ),
        responses={200: CallbackAck},
        description=(
            "Xendit invoice callback. 200 for anything stored (also duplicates and unknown "
            "external ids, which Xendit would otherwise retry); 401 `invalid_callback_token`; "
            "400 `invalid_callback`."
        ),
    )
    def post(self, request):
        return super().post(request)


class RefundCallbackApi(_CallbackApi):
    handler = staticmethod(services.refund_callback_receive)

    @extend_schema(
        operation_id="xendit_refund_callback",
        tags=["webhooks"],
        parameters=[TOKEN_PARAMETER],
        request=inline_serializer(
            "XenditRefundCallback",
            {
                "event": serializers.CharField(),
                "data": inline_serializer(
                    "XenditRefundCallbackData",
                    {
                        "id": serializers.CharField(),
                        "reference_id": serializers.CharField(help_text="Our refund id."),
                        "status": serializers.ChoiceField(choices=list(services.REFUND_STATUSES)),
                        "amount": serializers.IntegerField(),
                    },
                ),
            },
        ),
        responses={200: CallbackAck},
        description="Xendit refund callback; the refund's status moves forward only.",
    )
    def post(self, request):
        return super().post(request)
