from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from halobestie.runtime.selectors import get_config


class PackageOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    duration_minutes = serializers.IntegerField()
    price_idr = serializers.IntegerField()


class PublicConfigApi(APIView):
    """The public runtime config: packages and the limits the apps show or enforce."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(
        operation_id="config_retrieve",
        responses=inline_serializer(
            "PublicConfig",
            {
                "packages": PackageOut(many=True),
                "offer_timeout_seconds": serializers.IntegerField(),
                "matching_timeout_seconds": serializers.IntegerField(),
                "payment_timeout_seconds": serializers.IntegerField(),
                "ending_soon_lead_seconds": serializers.IntegerField(),
                "heartbeat_ttl_seconds": serializers.IntegerField(),
                "max_message_length": serializers.IntegerField(),
                "hotline_text": serializers.CharField(),
            },
        ),
    )
    def get(self, request):
        return Response(get_config().public_json())
