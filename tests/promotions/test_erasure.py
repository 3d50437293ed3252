"""One phone cannot farm first-session promos by erasing and re-creating its account: a keyed
hash of the phone is kept after erasure (only if the client ever had a session)."""

import hashlib
import hmac

from halobestie.accounts import services as accounts
from halobestie.accounts.models import User
from promotions.models import PhoneMark
from sessions_app import lifecycle as sessions
from tests.accounts.conftest import request_otp, verify_otp
from tests.conftest import auth_client

PHONE = "+6281234567890"


def sign_up(api, fazpass):
    request_otp(api, "081234567890")
    verified = verify_otp(api, "081234567890", fazpass.latest_code())
    assert verified.status_code == 200, verified.content
    return User.objects.get(pk=verified.json()["user"]["id"])


def test_it_refuses_a_first_session_promo_to_a_phone_that_erased_its_account(
    api, fazpass, make_voucher, serve_session, settings
):
    settings.PHONE_HASH_SECRET = "rahasia-hash-nomor"
    make_voucher(code="PERTAMA", is_first_session_only=True, max_redemptions_per_client=5)
    first = sign_up(api, fazpass)
    session = sessions.session_create(client=first, package_code="curhat-30", voucher_code="PERTAMA")
    sessions.session_mark_paid(session_id=session.pk)
    serve_session(session)
    assert auth_client(first).delete("/api/v1/me").status_code == 204

    expected = hmac.new(b"rahasia-hash-nomor", PHONE.encode(), hashlib.sha256).hexdigest()
    assert list(PhoneMark.objects.values_list("phone_hash", flat=True)) == [expected]
    assert not PhoneMark.objects.filter(phone_hash__contains="81234567890").exists()

    again = sign_up(api, fazpass)
    assert again.pk != first.pk
    response = auth_client(again).post(
        "/api/v1/sessions", {"package": "curhat-30", "voucher_code": "PERTAMA"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "voucher_not_first_session"
    assert not again.chat_sessions.exists()


def test_it_keeps_nothing_of_a_phone_that_never_had_a_session(api, fazpass, make_voucher):
    make_voucher(code="PERTAMA", is_first_session_only=True)
    first = sign_up(api, fazpass)
    sessions.session_create(client=first, package_code="curhat-30")  # never paid, never served
    accounts.user_erase(user=first)
    assert PhoneMark.objects.count() == 0
    again = sign_up(api, fazpass)
    response = auth_client(again).get("/api/v1/vouchers/PERTAMA", {"package": "curhat-30"})
    assert response.status_code == 200
    assert response.json()["discount_idr"] == 12500
