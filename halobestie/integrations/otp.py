"""Phone OTP providers behind one small interface: start a challenge, check a code.

- `FazpassProvider`: the real SMS/WhatsApp OTP over Fazpass' HTTP API (FAZPASS_ENABLED=true).
- `TestBypassProvider`: no message is sent (FAZPASS_ENABLED=false). The phones in
  OTP_TEST_PHONES accept OTP_TEST_CODE; with DEBUG on any phone does, and the code is logged
  (only then: it is the fixed test code, never a real one).

Our own limits (lifetime, resend cooldown, attempt cap, hourly caps) are enforced by
`halobestie.accounts.services`, never left to the provider. A provider that times out, cannot be
reached or answers 5xx raises `OtpProviderUnavailable` (503); an answer we cannot read raises
`OtpProviderError` (502). Neither the code nor the provider's answer (Fazpass echoes the code in
`data.otp`) is ever logged.
"""

import hmac
import logging
from dataclasses import dataclass

import requests
from django.conf import settings

from halobestie.accounts.phones import normalize_phone
from halobestie.errors import BadGateway, ServiceUnavailable

logger = logging.getLogger(__name__)


class OtpProviderUnavailable(ServiceUnavailable):
    code = "otp_unavailable"
    detail = "Layanan kode OTP sedang tidak tersedia. Coba lagi sebentar lagi."


class OtpProviderError(BadGateway):
    code = "otp_provider_error"
    detail = "Layanan kode OTP memberi jawaban yang tidak dikenal. Coba lagi sebentar lagi."


class OtpPhoneNotAllowed(ServiceUnavailable):
    """The test bypass is on and this phone is not a test phone: nothing can be sent to it."""

    code = "otp_disabled"
    detail = "Login dengan kode OTP sedang tidak tersedia untuk nomor ini."


class OtpProvider:
    """The interface. `name` is stored with each challenge (which provider holds its code)."""

    name = ""

    def start(self, *, phone: str) -> str:
        """Send a code to `phone` (E.164). Returns the provider's reference for `check`."""
        raise NotImplementedError

    def check(self, *, phone: str, reference: str, code: str) -> bool:
        """True when `code` is the code of challenge `reference` sent to `phone`."""
        raise NotImplementedError


@dataclass
class FazpassProvider(OtpProvider):
    base_url: str
    merchant_key: str
    gateway_key: str
    timeout_seconds: float = 10.0
    name = "fazpass"

    def start(self, *, phone: str) -> str:
        body = self._post(
            "/v1/otp/request", {"phone": _fazpass_phone(phone), "gateway_key": self.gateway_key}
        )
        data = body.get("data") if body.get("status") is True else None
        reference = data.get("id") if isinstance(data, dict) else None
        if not isinstance(reference, str) or not reference:
            logger.warning("fazpass: OTP request refused or unreadable", extra={"fazpass_code": _code(body)})
            raise OtpProviderError()
        return reference

    def check(self, *, phone: str, reference: str, code: str) -> bool:
        body = self._post("/v1/otp/verify", {"otp_id": reference, "otp": code})
        status = body.get("status")
        if not isinstance(status, bool):
            raise OtpProviderError()
        return status

    def _post(self, path: str, payload: dict) -> dict:
        """POST and return the JSON object. 5xx, timeouts and network errors: 503. A 4xx still
        carries Fazpass' `{status: false, …}` (a wrong code), so it is read like a 2xx."""
        try:
            response = requests.post(
                f"{self.base_url}{path}",
                json=payload,
                headers={"Authorization": f"Bearer {self.merchant_key}", "Accept": "application/json"},
                timeout=self.timeout_seconds,
            )
        except requests.RequestException as exc:
            logger.warning("fazpass unreachable", extra={"path": path, "error": type(exc).__name__})
            raise OtpProviderUnavailable() from None
        if response.status_code >= 500:
            logger.warning("fazpass error", extra={"path": path, "status": response.status_code})
            raise OtpProviderUnavailable()
        if response.status_code in (401, 403):
            # Our merchant key is wrong or revoked: an outage for the user, an alert for us.
            logger.error(
                "fazpass refused our credentials", extra={"path": path, "status": response.status_code}
            )
            raise OtpProviderUnavailable()
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            logger.warning("fazpass answer unreadable", extra={"path": path, "status": response.status_code})
            raise OtpProviderError()
        return body


def _fazpass_phone(phone: str) -> str:
    # Fazpass' examples write Indonesian numbers as 628…, without the plus.
    return phone.removeprefix("+")


def _code(body: dict):
    value = body.get("code")
    return value if isinstance(value, (str, int)) else None


@dataclass
class TestBypassProvider(OtpProvider):
    test_phones: tuple
    test_code: str
    allow_any_phone: bool = False
    name = "test"

    def start(self, *, phone: str) -> str:
        if not self.test_code:
            # DEBUG off and no OTP_TEST_CODE set: there is no bypass at all.
            raise OtpPhoneNotAllowed()
        if phone in self.test_phones:
            return "test"
        if not self.allow_any_phone:
            raise OtpPhoneNotAllowed()
        # DEBUG only (allow_any_phone): the fixed test code, so a developer can log in.
        logger.info("OTP test bypass (DEBUG): use code %s for %s", self.test_code, _masked(phone))
        return "test"

    def check(self, *, phone: str, reference: str, code: str) -> bool:
        if not self.test_code or (phone not in self.test_phones and not self.allow_any_phone):
            return False
        return hmac.compare_digest(code.encode(), self.test_code.encode())


def _masked(phone: str) -> str:
    return f"{phone[:6]}…{phone[-3:]}"


def get_provider() -> OtpProvider:
    """The provider the settings ask for (read on each call, so override_settings applies)."""
    if settings.FAZPASS_ENABLED:
        return FazpassProvider(
            base_url=settings.FAZPASS_BASE_URL.rstrip("/"),
            merchant_key=settings.FAZPASS_MERCHANT_KEY,
            gateway_key=settings.FAZPASS_GATEWAY_KEY,
            timeout_seconds=settings.FAZPASS_TIMEOUT_SECONDS,
        )
    phones = []
    for raw in settings.OTP_TEST_PHONES:
        try:
            phones.append(normalize_phone(raw))
        except Exception:
            logger.warning("OTP_TEST_PHONES holds an invalid phone; it is ignored")
    return TestBypassProvider(
        test_phones=tuple(phones), test_code=settings.OTP_TEST_CODE, allow_any_phone=settings.DEBUG
    )
