"""Promotions REST API under /api/v1/: the price preview of a voucher code."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from halobestie.accounts.permissions import IsClient
from halobestie.errors import ServiceError
from halobestie.runtime.selectors import get_config
from promotions import services


class VoucherPreviewOut(serializers.Serializer):
    code = serializers.CharField()
    campaign_name = serializers.CharField()
    package = serializers.CharField()
    list_price_idr = serializers.IntegerField()
    discount_idr = serializers.IntegerField()
    amount_idr = serializers.IntegerField()
    is_free = serializers.BooleanField()


class VoucherPreviewApi(APIView):
    """What the package costs with this code, for this client, now. Reserves nothing: the code
    is taken only when a session (or extension) is created with it."""

    permission_classes = [IsClient]

    @extend_schema(
        operation_id="vouchers_preview",
        parameters=[
            OpenApiParameter("package", str, required=True, description="Package code (GET /api/v1/config)."),
            OpenApiParameter(
                "kind",
                str,
                enum=["session", "extension"],
                description="For a new session (default) or an extension.",
            ),
        ],
        responses=VoucherPreviewOut,
    )
    def get(self, request, code):
        package_code = request.query_params.get("package", "")
        kind = request.query_params.get("kind", services.KIND_SESSION)
        if kind not in (services.KIND_SESSION, services.KIND_EXTENSION):
            raise serializers.ValidationError({"kind": ["Harus session atau extension."]})
        package = get_config().package(package_code)
        if package is None:
            raise ServiceError(
                "Paket tidak dikenal.", code="unknown_package", fields={"package": ["Paket tidak dikenal."]}
            )
        quote = services.voucher_quote(client=request.user, code=code, package=package, kind=kind)
        return Response(
            {
                "code": quote.code,
                "campaign_name": quote.campaign_name,
                "package": quote.package_code,
                "list_price_idr": quote.list_price_idr,
                "discount_idr": quote.discount_idr,
                "amount_idr": quote.amount_idr,
                "is_free": quote.is_free,
            }
        )
