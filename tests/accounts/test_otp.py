"""Phone OTP login: the real Fazpass client against a fake Fazpass server, the test bypass,
and our own limits (lifetime, cooldown, attempt cap, hourly caps)."""

import logging
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from halobestie.accounts import services
from halobestie.accounts.models import OtpChallenge, OtpStatus, Role, User
from halobestie.errors import TooManyRequests
from tests.accounts.conftest import GATEWAY_KEY, MERCHANT_KEY, request_otp, verify_otp

PHONE = "+6281234567890"


def test_it_logs_in_a_new_client_through_fazpass(api, fazpass):
    requested = request_otp(api, "081234567890")

    assert requested.status_code == 201
    challenge = OtpChallenge.objects.get()
    assert requested.json() == {
        "challenge_id": str(challenge.id),
        "expires_at": requested.json()["expires_at"],
        "resend_after_seconds": 60,
    }
    assert challenge.expires_at - challenge.created_at == timedelta(seconds=300)
    path, headers, body = fazpass.received[0]
    assert path == "/v1/otp/request"
    assert headers["Authorization"] == f"Bearer {MERCHANT_KEY}"
    assert body == {"phone": "6281234567890", "gateway_key": GATEWAY_KEY}

    verified = verify_otp(api, "+6281234567890", fazpass.latest_code(), challenge_id=challenge.id)

    assert verified.status_code == 200
    user = User.objects.get(phone=PHONE)
    assert user.role == Role.CLIENT
    assert verified.json()["user"] == {
        "id": user.id,
        "role": "client",
        "phone": PHONE,
        "display_name": "",
        "created_at": verified.json()["user"]["created_at"],
        "mitra_id": None,
    }
    assert fazpass.received[1][2] == {"otp_id": challenge.provider_reference, "otp": fazpass.latest_code()}
    challenge.refresh_from_db()
    assert (challenge.status, challenge.attempts) == (OtpStatus.VERIFIED, 1)
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {verified.json()['access']}")
    assert me.get("/api/v1/me").json()["id"] == user.id


def test_it_logs_in_an_existing_client_without_creating_another(api, fazpass, make_client_user):
    client = make_client_user(phone=PHONE)
    request_otp(api, "6281234567890")

    verified = verify_otp(api, PHONE, fazpass.latest_code())

    assert verified.status_code == 200
    assert verified.json()["user"]["id"] == client.id
    assert User.objects.filter(role=Role.CLIENT).count() == 1


def test_it_refuses_a_wrong_code_and_counts_the_attempt(api, fazpass):
    request_otp(api, PHONE)
    wrong = "000000" if fazpass.latest_code() != "000000" else "111111"

    refused = verify_otp(api, PHONE, wrong)

    assert refused.status_code == 400
    assert refused.json() == {
        "error": {"code": "otp_invalid", "detail": "Kode OTP salah. Sisa percobaan: 4."}
    }
    assert OtpChallenge.objects.get().attempts == 1
    assert OtpChallenge.objects.get().status == OtpStatus.PENDING
    assert not User.objects.filter(phone=PHONE).exists()


def test_it_refuses_the_sixth_code_even_when_it_is_right(api, fazpass):
    request_otp(api, PHONE)
    right = fazpass.latest_code()
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(5):
        assert verify_otp(api, PHONE, wrong).json()["error"]["code"] == "otp_invalid"
    checks_at_fazpass = fazpass.paths().count("/v1/otp/verify")

    sixth = verify_otp(api, PHONE, right)

    assert sixth.status_code == 429
    assert sixth.json()["error"]["code"] == "otp_attempts_exceeded"
    assert int(sixth["Retry-After"]) >= 1
    assert fazpass.paths().count("/v1/otp/verify") == checks_at_fazpass == 5
    assert OtpChallenge.objects.get().attempts == 5
    assert not User.objects.filter(phone=PHONE).exists()


@pytest.mark.parametrize("status", [500, 502, 503])
def test_it_answers_503_when_fazpass_fails_on_request(api, fazpass, status):
    fazpass.fail_with = status

    response = request_otp(api, PHONE)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "otp_unavailable"
    # Nothing counts against the user: a retry may go at once.
    assert OtpChallenge.objects.count() == 0
    fazpass.fail_with = None
    assert request_otp(api, PHONE).status_code == 201


def test_it_answers_503_when_fazpass_times_out(api, fazpass):
    fazpass.delay_seconds = 1.5  # the client's timeout is 0.5 s

    response = request_otp(api, PHONE)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "otp_unavailable"
    assert OtpChallenge.objects.count() == 0


def test_it_answers_503_when_fazpass_fails_on_verify_and_gives_the_attempt_back(api, fazpass):
    request_otp(api, PHONE)
    code = fazpass.latest_code()
    fazpass.fail_with = 500

    failed = verify_otp(api, PHONE, code)

    assert failed.status_code == 503
    assert failed.json()["error"]["code"] == "otp_unavailable"
    assert OtpChallenge.objects.get().attempts == 0
    fazpass.fail_with = None
    fazpass.delay_seconds = 1.5
    assert verify_otp(api, PHONE, code).status_code == 503
    fazpass.delay_seconds = 0
    assert verify_otp(api, PHONE, code).status_code == 200


def test_it_answers_503_when_fazpass_refuses_our_merchant_key(api, fazpass):
    with override_settings(FAZPASS_MERCHANT_KEY="revoked"):
        response = request_otp(api, PHONE)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "otp_unavailable"


def test_it_answers_429_with_retry_after_on_a_resend_inside_the_cooldown(api, fazpass):
    request_otp(api, PHONE)

    again = request_otp(api, "081234567890")

    assert again.status_code == 429
    assert again.json()["error"]["code"] == "otp_resend_too_soon"
    assert 59 <= int(again["Retry-After"]) <= 60
    assert fazpass.paths() == ["/v1/otp/request"]
    assert OtpChallenge.objects.count() == 1


def test_it_sends_a_new_code_after_the_cooldown_and_supersedes_the_old_one(fazpass):
    first = services.otp_challenge_request(phone=PHONE, ip_address="10.0.0.1")
    first_code = fazpass.latest_code()
    second = services.otp_challenge_request(
        phone=PHONE, ip_address="10.0.0.1", now=timezone.now() + timedelta(seconds=61)
    )

    first.refresh_from_db()
    assert (first.status, second.status) == (OtpStatus.SUPERSEDED, OtpStatus.PENDING)
    with pytest.raises(services.OtpSuperseded):
        services.otp_challenge_verify(phone=PHONE, code=first_code, challenge_id=first.id)
    user = services.otp_challenge_verify(
        phone=PHONE, code=fazpass.latest_code(), now=timezone.now() + timedelta(seconds=62)
    )
    assert user.phone == PHONE


@override_settings(OTP_RESEND_COOLDOWN_SECONDS=0, OTP_MAX_PER_PHONE_PER_HOUR=3)
def test_it_caps_requests_per_phone_per_hour(api, fazpass):
    for _ in range(3):
        assert request_otp(api, PHONE).status_code == 201

    capped = request_otp(api, PHONE)

    assert capped.status_code == 429
    assert capped.json()["error"]["code"] == "otp_phone_limit"
    assert 3590 <= int(capped["Retry-After"]) <= 3600
    assert OtpChallenge.objects.count() == 3
    assert request_otp(api, "+6281234567891").status_code == 201


@override_settings(OTP_MAX_PER_IP_PER_HOUR=2)
def test_it_caps_requests_per_ip_per_hour(api, fazpass):
    assert request_otp(api, "+6281234567801", REMOTE_ADDR="203.0.113.7").status_code == 201
    assert request_otp(api, "+6281234567802", REMOTE_ADDR="203.0.113.7").status_code == 201

    capped = request_otp(api, "+6281234567803", REMOTE_ADDR="203.0.113.7")

    assert capped.status_code == 429
    assert capped.json()["error"]["code"] == "otp_ip_limit"
    assert 3590 <= int(capped["Retry-After"]) <= 3600
    assert not OtpChallenge.objects.filter(phone="+6281234567803").exists()
    assert request_otp(api, "+6281234567803", REMOTE_ADDR="203.0.113.8").status_code == 201


def test_it_lets_the_phone_cap_pass_again_once_the_hour_is_over(fazpass):
    now = timezone.now()
    with override_settings(OTP_RESEND_COOLDOWN_SECONDS=0, OTP_MAX_PER_PHONE_PER_HOUR=1):
        services.otp_challenge_request(phone=PHONE, ip_address=None, now=now)
        with pytest.raises(services.OtpPhoneLimit) as refused:
            services.otp_challenge_request(phone=PHONE, ip_address=None, now=now + timedelta(minutes=59))
        assert refused.value.retry_after == 60
        services.otp_challenge_request(phone=PHONE, ip_address=None, now=now + timedelta(minutes=61))

    assert OtpChallenge.objects.filter(phone=PHONE).count() == 2


@pytest.mark.parametrize("raw", ["081234567890", "6281234567890", "+6281234567890", "+62 812-3456-7890"])
def test_it_normalises_every_indonesian_format(api, fazpass, raw):
    assert request_otp(api, raw).status_code == 201

    assert OtpChallenge.objects.get().phone == PHONE


@pytest.mark.parametrize("raw", ["12345", "+14155550123", "0812", "", "telepon"])
def test_it_refuses_a_phone_that_is_not_indonesian_mobile_as_a_field_error(api, fazpass, raw):
    response = request_otp(api, raw)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert list(response.json()["error"]["fields"]) == ["phone"]
    assert fazpass.received == []


def test_it_refuses_an_expired_code(fazpass):
    challenge = services.otp_challenge_request(phone=PHONE, ip_address=None)

    with pytest.raises(services.OtpExpired):
        services.otp_challenge_verify(
            phone=PHONE, code=fazpass.latest_code(), now=challenge.expires_at + timedelta(seconds=1)
        )

    challenge.refresh_from_db()
    assert (challenge.status, challenge.attempts) == (OtpStatus.PENDING, 0)
    assert not User.objects.filter(phone=PHONE).exists()


def test_it_refuses_a_code_used_once_already(api, fazpass):
    request_otp(api, PHONE)
    code = fazpass.latest_code()
    assert verify_otp(api, PHONE, code).status_code == 200

    again = verify_otp(api, PHONE, code)

    assert again.status_code == 400
    assert again.json()["error"]["code"] == "otp_already_used"


def test_it_refuses_a_challenge_of_another_phone(api, fazpass):
    request_otp(api, PHONE)
    challenge = OtpChallenge.objects.get()

    response = verify_otp(api, "+6281234567891", fazpass.latest_code(), challenge_id=challenge.id)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "otp_challenge_not_found"
    assert OtpChallenge.objects.get().attempts == 0


def test_it_refuses_otp_login_to_a_mitra_phone(api, fazpass, make_mitra):
    mitra = make_mitra(phone=PHONE)
    request_otp(api, PHONE)

    response = verify_otp(api, PHONE, fazpass.latest_code())

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "role_not_allowed"
    assert User.objects.get(phone=PHONE).pk == mitra.user_id
    assert OtpChallenge.objects.get().status == OtpStatus.PENDING


def test_it_logs_in_a_test_phone_with_the_test_code_when_fazpass_is_off(api, bypass):
    assert request_otp(api, "081200000001").status_code == 201

    assert verify_otp(api, "081200000001", "111111").json()["error"]["code"] == "otp_invalid"
    verified = verify_otp(api, "081200000001", "246810")

    assert verified.status_code == 200
    assert verified.json()["user"]["phone"] == "+6281200000001"


def test_it_sends_nothing_to_other_phones_when_fazpass_is_off_outside_debug(api, bypass):
    response = request_otp(api, PHONE)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "otp_disabled"
    assert OtpChallenge.objects.count() == 0


def test_it_lets_any_phone_in_with_the_logged_test_code_in_debug(api, bypass, caplog):
    with override_settings(DEBUG=True), caplog.at_level(logging.INFO, logger="halobestie.integrations.otp"):
        assert request_otp(api, PHONE).status_code == 201
        verified = verify_otp(api, PHONE, "246810")

    assert verified.status_code == 200
    assert any("246810" in record.getMessage() for record in caplog.records)


def test_it_keeps_codes_and_tokens_out_of_the_logs_outside_debug(api, fazpass, caplog):
    with caplog.at_level(logging.DEBUG):
        request_otp(api, PHONE)
        code = fazpass.latest_code()
        verify_otp(api, PHONE, "000000" if code != "000000" else "111111")
        verified = verify_otp(api, PHONE, code)

    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert verified.status_code == 200
    for secret in (code, verified.json()["access"], verified.json()["refresh"]):
        assert secret not in text


def test_it_never_allows_more_attempts_than_the_cap_under_concurrent_guesses(transactional_db, bypass):
    with override_settings(OTP_TEST_PHONES=[PHONE]):
        challenge = services.otp_challenge_request(phone=PHONE, ip_address=None)
        outcomes = []
        start = threading.Barrier(12)

        def guess():
            try:
                start.wait()
                services.otp_challenge_verify(phone=PHONE, code="999999", challenge_id=challenge.id)
                outcomes.append("accepted")
            except services.OtpInvalid:
                outcomes.append("wrong")
            except TooManyRequests:
                outcomes.append("locked")
            finally:
                connection.close()

        threads = [threading.Thread(target=guess) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    assert sorted(outcomes) == ["locked"] * 7 + ["wrong"] * 5
    challenge.refresh_from_db()
    assert challenge.attempts == 5
