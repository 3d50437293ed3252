"""Abuse limits: password and OTP brute force, SMS pumping across phones and across addresses,
oversized request bodies under the real server. (Message floods and oversized frames on the
WebSocket: test_websocket_fuzz.py.)"""

import threading
from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from halobestie.accounts import services
from halobestie.accounts.models import LoginFailure, OtpChallenge, User
from halobestie.accounts.tokens import tokens_for
from tests.accounts.conftest import fazpass, request_otp, verify_otp  # noqa: F401 (fixture)
from tests.servers import uvicorn_process

PASSWORD = "rahasia-mitra-123"
LIMITS = override_settings(
    MITRA_LOGIN_WINDOW_SECONDS=900, MITRA_LOGIN_MAX_FAILURES_PER_PHONE=3, MITRA_LOGIN_MAX_FAILURES_PER_IP=5
)


def login(api, phone, password, ip="198.51.100.1"):
    return api.post(
        "/api/v1/auth/mitra/login", {"phone": phone, "password": password}, format="json", REMOTE_ADDR=ip
    )


# Mitra password brute force ------------------------------------------------------------------


@LIMITS
def test_it_locks_a_phone_after_three_wrong_passwords_even_for_the_right_one(api, make_mitra):
    mitra = make_mitra()
    phone = mitra.user.phone
    wrong = [login(api, phone, f"tebakan-{n}").status_code for n in range(3)]

    locked = login(api, phone, PASSWORD)

    assert wrong == [401, 401, 401]
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "login_phone_limit"
    assert 890 <= int(locked["Retry-After"]) <= 900
    assert LoginFailure.objects.filter(phone=phone).count() == 3  # a refused attempt adds none
    assert User.objects.get(pk=mitra.user.pk).last_login is None
    # Another address changes nothing for this phone.
    assert login(api, phone, PASSWORD, ip="198.51.100.99").status_code == 429


@LIMITS
def test_it_lets_the_phone_in_once_the_window_has_passed_and_clears_its_failures(make_mitra):
    mitra = make_mitra()
    phone = mitra.user.phone
    then = timezone.now() - timedelta(seconds=901)
    for _ in range(3):
        with pytest.raises(services.InvalidCredentials):
            services.auth_mitra_login(phone=phone, password="salah", ip_address="198.51.100.1", now=then)

    user = services.auth_mitra_login(phone=phone, password=PASSWORD, ip_address="198.51.100.1")

    assert user.pk == mitra.user.pk
    assert not LoginFailure.objects.filter(phone=phone).exists()


@LIMITS
def test_it_locks_an_address_that_guesses_across_many_phones(api, make_mitra):
    mitras = [make_mitra() for _ in range(6)]
    spread = [login(api, m.user.phone, "salah", ip="203.0.113.50").status_code for m in mitras[:5]]
    unknown_phone = login(api, "+6281399999999", "salah", ip="203.0.113.50")

    assert spread == [401] * 5
    assert unknown_phone.status_code == 429
    assert unknown_phone.json()["error"]["code"] == "login_ip_limit"
    assert int(unknown_phone["Retry-After"]) > 0
    # The sixth mitra, from its own address, is not locked out by the attacker's.
    assert login(api, mitras[5].user.phone, PASSWORD, ip="203.0.113.51").status_code == 200
    assert LoginFailure.objects.count() == 5


@LIMITS
def test_it_counts_unknown_phones_like_wrong_passwords(api):
    answers = [login(api, "+6281398765432", "apa-saja").status_code for _ in range(4)]

    assert answers == [401, 401, 401, 429]


@LIMITS
def test_it_never_allows_more_guesses_than_the_cap_under_concurrency(transactional_db, make_mitra):
    mitra = make_mitra()
    phone = mitra.user.phone
    results = []
    barrier = threading.Barrier(8)

    def guess(number):
        barrier.wait()
        try:
            services.auth_mitra_login(phone=phone, password=f"tebakan-{number}", ip_address="198.51.100.7")
            results.append("in")
        except services.LoginPhoneLimit:
            results.append(429)
        except services.InvalidCredentials:
            results.append(401)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results, key=str) == [401, 401, 401, 429, 429, 429, 429, 429]
    assert LoginFailure.objects.filter(phone=phone).count() == 3


# OTP: SMS pumping and code guessing --------------------------------------------------------


@override_settings(OTP_MAX_PER_IP_PER_HOUR=4, OTP_MAX_PER_PHONE_PER_HOUR=3)
def test_it_stops_one_address_pumping_sms_to_many_phones(api, fazpass):  # noqa: F811
    phones = [f"+62812555000{n:02d}" for n in range(6)]
    answers = [request_otp(api, p, REMOTE_ADDR="203.0.113.9").status_code for p in phones]

    assert answers == [201, 201, 201, 201, 429, 429]
    assert OtpChallenge.objects.filter(ip_address="203.0.113.9").count() == 4
    assert fazpass.paths().count("/v1/otp/request") == 4  # no SMS went out for the refused ones


@override_settings(OTP_RESEND_COOLDOWN_SECONDS=0, OTP_MAX_PER_PHONE_PER_HOUR=3, OTP_MAX_PER_IP_PER_HOUR=20)
def test_it_stops_many_addresses_pumping_sms_to_one_phone(api, fazpass):  # noqa: F811
    phone = "+6281255500077"
    answers = [request_otp(api, phone, REMOTE_ADDR=f"203.0.113.{n}").status_code for n in range(10, 16)]
    capped = request_otp(api, phone, REMOTE_ADDR="203.0.113.200")

    assert answers == [201, 201, 201, 429, 429, 429]
    assert capped.json()["error"]["code"] == "otp_phone_limit"
    assert 3590 <= int(capped["Retry-After"]) <= 3600
    assert OtpChallenge.objects.filter(phone=phone).count() == 3
    assert fazpass.paths().count("/v1/otp/request") == 3


@override_settings(OTP_MAX_ATTEMPTS=5)
def test_it_refuses_a_guessed_code_after_five_wrong_ones(api, fazpass):  # noqa: F811
    phone = "+6281255500088"
    request_otp(api, phone)
    right = fazpass.latest_code()
    wrong_code = "000000" if right != "000000" else "111111"
    guesses = [verify_otp(api, phone, wrong_code).status_code for _ in range(5)]

    after = verify_otp(api, phone, right)

    assert guesses == [400] * 5
    assert after.status_code == 429
    assert after.json()["error"]["code"] == "otp_attempts_exceeded"
    assert not User.objects.filter(phone=phone).exists()


# Oversized bodies under the real server (uvicorn) -------------------------------------------


def test_it_answers_413_in_the_envelope_for_an_oversized_body_under_uvicorn(
    transactional_db, tmp_path, make_client_user
):
    body = b'{"phone": "' + b"1" * (200 * 1024) + b'"}'
    client = {"Authorization": f"Bearer {tokens_for(make_client_user())['access']}"}
    with uvicorn_process("public", log_path=tmp_path / "public.log") as (_, base_url):
        answers = [
            requests.post(
                f"{base_url}{path}",
                data=body,
                headers={"Content-Type": "application/json", **headers},
                timeout=10,
            )
            for path, headers in (
                ("/api/v1/auth/otp/request", {}),
                ("/api/v1/sessions", client),
                ("/webhooks/xendit/invoice", {}),
            )
        ]
        still_serving = requests.get(f"{base_url}/api/v1/config", timeout=10)

    assert [a.status_code for a in answers] == [413, 413, 413]
    assert [a.json()["error"]["code"] for a in answers] == ["payload_too_large"] * 3
    assert still_serving.status_code == 200
