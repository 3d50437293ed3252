"""Accounts API: phone OTP login, mitra login, token refresh and logout, the user's own
account (`/me`), and FCM devices. One view per operation; the work is in services.py."""

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from halobestie.accounts import services
from halobestie.accounts.permissions import IsClient, IsClientOrMitra
from halobestie.accounts.phones import normalize_phone
from halobestie.accounts.tokens import tokens_for
from halobestie.legacy.tokens import legacy_refresh_exchange, legacy_refresh_revoke
from halobestie.server.offload import OffSharedThreadMixin


class PhoneField(serializers.CharField):
    """An Indonesian phone (`08…`, `628…`, `+628…`), normalised to E.164 `+628…`."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault("help_text", "Nomor HP Indonesia: 08…, 628… atau +628…")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return normalize_phone(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


class UserOut(serializers.Serializer):
    id = serializers.IntegerField()
    role = serializers.CharField(help_text="`client` atau `mitra`.")
    phone = serializers.CharField(allow_null=True, help_text="E.164, mis. +6281234567890.")
    display_name = serializers.CharField(allow_blank=True, help_text="Nama panggilan.")
    created_at = serializers.DateTimeField()
    mitra_id = serializers.IntegerField(allow_null=True, help_text="Untuk akun mitra: id profil Bestie-nya.")


def user_payload(user):
    mitra = getattr(user, "mitra", None) if user.role == "mitra" else None
    return UserOut(
        {
            "id": user.id,
            "role": user.role,
            "phone": user.phone,
            "display_name": user.display_name,
            "created_at": user.created_at,
            "mitra_id": mitra.id if mitra is not None else None,
        }
    ).data


class TokenPairOut(serializers.Serializer):
    access = serializers.CharField(help_text="JWT akses (berumur pendek); header `Authorization: Bearer …`.")
    refresh = serializers.CharField(help_text="JWT refresh: tukarkan di /auth/token/refresh (sekali pakai).")


class LoginOut(TokenPairOut):
    user = UserOut()


def _login_payload(user):
    return {**tokens_for(user), "user": user_payload(user)}


def client_ip(request):
    """The client's address. Behind a reverse proxy the server (uvicorn with
    FORWARDED_ALLOW_IPS) has already replaced it with the X-Forwarded-For address of a trusted
    proxy, so REMOTE_ADDR is right here; a forwarded header is never read directly."""
    return request.META.get("REMOTE_ADDR") or None


class PublicApi(APIView):
    """An endpoint that takes no access token; a token it reads from the body and refuses is a
    401 (DRF would turn a 401 into 403 for a view without authenticators)."""

    permission_classes = [AllowAny]
    authentication_classes = []

    def get_authenticate_header(self, request):
        return 'Bearer realm="api"'


# OTP login ----------------------------------------------------------------------------------


class OtpRequestIn(serializers.Serializer):
    phone = PhoneField()


class OtpChallengeOut(serializers.Serializer):
    challenge_id = serializers.UUIDField()
    expires_at = serializers.DateTimeField(help_text="Kode tidak berlaku lagi setelah ini.")
    resend_after_seconds = serializers.IntegerField(help_text="Detik sebelum boleh meminta kode baru.")


class OtpRequestApi(PublicApi):
    """Send a login code to the phone. 429 with `Retry-After` inside the resend cooldown
    (`otp_resend_too_soon`) or past the hourly caps (`otp_phone_limit`, `otp_ip_limit`); 503
    `otp_unavailable` when the OTP provider is down."""

    throttle_classes = []  # a limit of its own (accounts.services), with its own codes

    @extend_schema(operation_id="auth_otp_request", request=OtpRequestIn, responses={201: OtpChallengeOut})
    def post(self, request):
        body = OtpRequestIn(data=request.data)
        body.is_valid(raise_exception=True)
        challenge = services.otp_challenge_request(
            phone=body.validated_data["phone"], ip_address=client_ip(request)
        )
        data = {
            "challenge_id": challenge.id,
            "expires_at": challenge.expires_at,
            "resend_after_seconds": settings.OTP_RESEND_COOLDOWN_SECONDS,
        }
        return Response(OtpChallengeOut(data).data, status=status.HTTP_201_CREATED)


class OtpVerifyIn(serializers.Serializer):
    phone = PhoneField()
    code = serializers.RegexField(r"^[0-9]{4,8}$", help_text="Kode dari SMS/WhatsApp.")
    challenge_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="Dari /auth/otp/request; tanpa ini, kode terbaru nomor itu.",
    )


class OtpVerifyApi(OffSharedThreadMixin, PublicApi):
    """Log in with the code: the client account is created on first login. A wrong code is 400
    `otp_invalid`; after OTP_MAX_ATTEMPTS codes every further one is 429 `otp_attempts_exceeded`
    (ask for a new code)."""

    throttle_classes = []  # a limit of its own (accounts.services), with its own codes

    @extend_schema(operation_id="auth_otp_verify", request=OtpVerifyIn, responses=LoginOut)
    def post(self, request):
        body = OtpVerifyIn(data=request.data)
        body.is_valid(raise_exception=True)
        user = services.otp_challenge_verify(
            phone=body.validated_data["phone"],
            code=body.validated_data["code"],
            challenge_id=body.validated_data.get("challenge_id"),
        )
        return Response(LoginOut(_login_payload(user)).data)


# Mitra login, refresh, logout ---------------------------------------------------------------


class MitraLoginIn(serializers.Serializer):
    phone = PhoneField()
    password = serializers.CharField(max_length=128, trim_whitespace=False, style={"input_type": "password"})


class MitraLoginApi(OffSharedThreadMixin, PublicApi):
    """Mitra login with phone and password (staff create mitra accounts). 401
    `invalid_credentials`; 403 `mitra_deactivated` for a deactivated mitra; 429 with
    `Retry-After` after too many wrong passwords for the phone (`login_phone_limit`) or from the
    address (`login_ip_limit`)."""

    throttle_classes = []  # a limit of its own (accounts.services), with its own codes

    @extend_schema(operation_id="auth_mitra_login", request=MitraLoginIn, responses=LoginOut)
    def post(self, request):
        body = MitraLoginIn(data=request.data)
        body.is_valid(raise_exception=True)
        user = services.auth_mitra_login(
            phone=body.validated_data["phone"],
            password=body.validated_data["password"],
            ip_address=client_ip(request),
        )
        return Response(LoginOut(_login_payload(user)).data)


class RefreshIn(serializers.Serializer):
    refresh = serializers.CharField(max_length=2048)


def _bearer_payload(request):
    """The claims of a valid access token in the Authorization header, or None."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not raw.strip():
        return None
    try:
        return dict(AccessToken(raw.strip()).payload)
    except TokenError:
        return None


class TokenRefreshApi(PublicApi):
    """Exchange a refresh token for a new pair. The old refresh token is revoked (rotation). The
    same refresh token sent again within AUTH_REFRESH_REUSE_LEEWAY_SECONDS (an app refreshing
    from foreground and background at once) gets the same new pair; sent again later it is a
    reuse: 401 `token_reused`, and every token of that login (refresh and access) is revoked.
    A revoked, expired or foreign token is 401 `token_not_valid`, and so is the token of a
    deleted account (`account_deleted`) or a deactivated mitra (`mitra_deactivated`).

    Cutover: until LEGACY_JWT_ACCEPT_UNTIL a refresh token of the old Node backend is exchanged
    (once) for a pair of ours, for users brought across by the import; after that it is 401
    `legacy_token_expired`: the app must log in again (docs/cutover.md)."""

    @extend_schema(operation_id="auth_token_refresh", request=RefreshIn, responses=TokenPairOut)
    def post(self, request):
        body = RefreshIn(data=request.data)
        body.is_valid(raise_exception=True)
        refresh = body.validated_data["refresh"]
        # None unless it is a token of the old backend (halobestie/legacy/tokens.py).
        pair = legacy_refresh_exchange(refresh=refresh)
        if pair is None:
            pair = services.auth_token_refresh(refresh=refresh)
        return Response(TokenPairOut(pair).data)


class LogoutApi(PublicApi):
    """Log out: the refresh token's whole family is revoked (every refresh token rotated from the
    same login is blacklisted, every access token issued with them refused from now on with 401
    `token_revoked`, on REST and at socket connect), and so is the access token in the
    Authorization header, if one is sent. The deny list is in PostgreSQL: it holds while Valkey
    is down. During the cutover window an old Node backend's refresh token is revoked too
    (docs/cutover.md)."""

    @extend_schema(operation_id="auth_logout", request=RefreshIn, responses={204: OpenApiResponse()})
    def post(self, request):
        body = RefreshIn(data=request.data)
        body.is_valid(raise_exception=True)
        refresh = body.validated_data["refresh"]
        if not legacy_refresh_revoke(refresh=refresh):
            services.auth_logout(refresh=refresh, access_payload=_bearer_payload(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# The user's own account ---------------------------------------------------------------------


class MeUpdateIn(serializers.Serializer):
    display_name = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Nama panggilan."
    )


class MeApi(APIView):
    """The account of the token's user. DELETE (clients only) erases the personal data."""

    permission_classes = [IsClientOrMitra]

    def get_permissions(self):
        return [IsClient()] if self.request.method == "DELETE" else [IsClientOrMitra()]

    @extend_schema(operation_id="me_retrieve", responses=UserOut)
    def get(self, request):
        return Response(user_payload(request.user))

    @extend_schema(operation_id="me_update", request=MeUpdateIn, responses=UserOut)
    def patch(self, request):
        body = MeUpdateIn(data=request.data)
        body.is_valid(raise_exception=True)
        user = services.user_update_profile(user=request.user, **body.validated_data)
        return Response(user_payload(user))

    @extend_schema(
        operation_id="me_delete",
        description=(
            "The client erases their account: personal data, devices, tokens, and in the same "
            "transaction every transcript of their sessions (tombstones keep seq), rating comments, "
            "report texts and the payer fields of their payment callbacks. What stays and why: "
            "docs/privacy.md."
        ),
        responses={204: OpenApiResponse(description="Data pribadi dihapus; semua token dicabut.")},
    )
    def delete(self, request):
        services.user_erase(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# Devices ------------------------------------------------------------------------------------


class DeviceIn(serializers.Serializer):
    token = serializers.CharField(max_length=512, help_text="Token registrasi FCM.")
    platform = serializers.ChoiceField(
        choices=["android", "ios", "web"], required=False, allow_blank=True, default=""
    )


class DeviceOut(serializers.Serializer):
    token = serializers.CharField()
    platform = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class DeviceRegisterApi(APIView):
    """Register (or refresh) this device's FCM token. A token belongs to whoever registered it
    last: logging in as someone else on the same phone moves it."""

    permission_classes = [IsClientOrMitra]

    @extend_schema(operation_id="devices_register", request=DeviceIn, responses=DeviceOut)
    def post(self, request):
        body = DeviceIn(data=request.data)
        body.is_valid(raise_exception=True)
        device = services.device_register(user=request.user, **body.validated_data)
        return Response(DeviceOut(device).data)


class DeviceDeleteApi(APIView):
    """Forget one of your own FCM tokens (at logout). 404 for a token that is not yours."""

    permission_classes = [IsClientOrMitra]

    @extend_schema(operation_id="devices_delete", responses={204: OpenApiResponse()})
    def delete(self, request, token):
        services.device_delete(user=request.user, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)
