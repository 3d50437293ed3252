"""GET /api/v1/vouchers/{code}: the price with a code, every refusal in the envelope, limits."""

from datetime import timedelta

from django.utils import timezone

from promotions.models import Campaign, Redemption, Voucher, VoucherLookup
from sessions_app import lifecycle as sessions
from sessions_app.models import ChatSession
from tests.conftest import auth_client


def preview(client, code, package="curhat-30", **params):
    return auth_client(client).get(f"/api/v1/vouchers/{code}", {"package": package, **params})


def test_it_previews_a_percentage_discount_without_reserving_it(make_client_user, make_voucher):
    voucher = make_voucher(code="HEMAT50", max_redemptions=1, name="Promo Gajian")
    response = preview(make_client_user(), "hemat50")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "code": "HEMAT50", "campaign_name": "Promo Gajian", "package": "curhat-30",
        "list_price_idr": 25000, "discount_idr": 12500, "amount_idr": 12500, "is_free": False,
    }  # fmt: skip
    voucher.refresh_from_db()
    assert voucher.redemptions_taken == 0
    assert Redemption.objects.count() == 0


def test_it_caps_a_percentage_and_takes_a_fixed_discount_off(make_client_user, make_voucher):
    make_voucher(code="CAP", discount_value=50, max_discount_idr=5000)
    make_voucher(code="POTONG", discount_kind="fixed", discount_value=10000)
    client = make_client_user()
    assert preview(client, "CAP", "curhat-60").json()["amount_idr"] == 40000
    assert preview(client, "POTONG", "curhat-15").json()["amount_idr"] == 5000


def test_it_never_leaves_less_than_the_xendit_minimum_to_pay(make_client_user, make_voucher, set_config):
    make_voucher(code="HAMPIR", discount_kind="fixed", discount_value=24500)
    make_voucher(code="PERSEN99", discount_value=99)
    client = make_client_user()
    body = preview(client, "HAMPIR").json()
    assert (body["discount_idr"], body["amount_idr"], body["is_free"]) == (24000, 1000, False)
    assert preview(client, "PERSEN99").json()["amount_idr"] == 1000
    set_config(xendit_min_invoice_idr=5000)
    body = preview(client, "HAMPIR").json()
    assert (body["discount_idr"], body["amount_idr"]) == (20000, 5000)


def test_it_makes_a_whole_discount_free(make_client_user, make_voucher):
    make_voucher(code="GRATIS", discount_value=100)
    make_voucher(code="LEBIH", discount_kind="fixed", discount_value=99999)
    client = make_client_user()
    for code in ("GRATIS", "LEBIH"):
        body = preview(client, code).json()
        assert (body["discount_idr"], body["amount_idr"], body["is_free"]) == (25000, 0, True)


def assert_refused(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["fields"]["voucher_code"] == [error["detail"]]
    return error


def test_it_refuses_an_unknown_code(make_client_user):
    error = assert_refused(preview(make_client_user(), "TIDAKADA"), 404, "voucher_unknown")
    assert error["detail"] == "Kode promo tidak ditemukan atau sudah tidak berlaku."


def test_it_answers_a_stranger_the_same_for_expired_and_unknown(make_client_user, make_voucher):
    make_voucher(
        code="LAMA", starts_at=timezone.now() - timedelta(days=9), ends_at=timezone.now() - timedelta(days=1)
    )
    make_voucher(
        code="NANTI", starts_at=timezone.now() + timedelta(days=1), ends_at=timezone.now() + timedelta(days=9)
    )
    make_voucher(code="MATI", is_active=False)
    client = make_client_user()
    unknown = preview(client, "TIDAKADA")
    for code in ("LAMA", "NANTI", "MATI"):
        response = preview(client, code)
        assert (response.status_code, response.json()) == (unknown.status_code, unknown.json())


def test_it_tells_a_client_who_used_the_campaign_that_it_expired(make_client_user, make_voucher):
    voucher = make_voucher(code="MUSIMAN", max_redemptions_per_client=3)
    client = make_client_user()
    sessions.session_create(client=client, package_code="curhat-30", voucher_code="MUSIMAN")
    Campaign.objects.filter(pk=voucher.campaign_id).update(ends_at=timezone.now() - timedelta(minutes=1))
    error = assert_refused(preview(client, "MUSIMAN"), 409, "voucher_expired")
    assert error["detail"] == "Kode promo ini sudah kedaluwarsa."


def test_it_refuses_a_code_that_is_used_up(make_client_user, make_voucher):
    make_voucher(code="SATU", max_redemptions=1)
    sessions.session_create(client=make_client_user(), package_code="curhat-30", voucher_code="SATU")
    assert_refused(preview(make_client_user(), "SATU"), 409, "voucher_used_up")


def test_it_refuses_a_code_for_another_package(make_client_user, make_voucher):
    make_voucher(code="SEJAM", valid_packages=["curhat-60"])
    client = make_client_user()
    error = assert_refused(preview(client, "SEJAM", "curhat-30"), 400, "voucher_not_for_package")
    assert error["detail"] == "Kode promo ini tidak berlaku untuk paket yang dipilih."
    assert preview(client, "SEJAM", "curhat-60").status_code == 200


def test_it_refuses_a_first_session_code_to_a_client_who_had_a_session(
    make_client_user, make_voucher, serve_session
):
    make_voucher(code="PERTAMA", is_first_session_only=True)
    client = make_client_user()
    assert preview(client, "PERTAMA").status_code == 200
    session = sessions.session_create(client=client, package_code="curhat-30")
    sessions.session_mark_paid(session_id=session.pk)
    serve_session(session)
    error = assert_refused(preview(client, "PERTAMA"), 409, "voucher_not_first_session")
    assert error["detail"] == "Kode promo ini hanya berlaku untuk sesi berbayar pertamamu."


def test_it_refuses_a_code_the_client_already_used_as_often_as_allowed(
    make_client_user, make_voucher, serve_session
):
    make_voucher(code="SEKALI")
    client = make_client_user()
    session = sessions.session_create(client=client, package_code="curhat-30", voucher_code="SEKALI")
    sessions.session_mark_paid(session_id=session.pk)
    serve_session(session)
    assert_refused(preview(client, "SEKALI"), 409, "voucher_already_used")


def test_it_refuses_a_session_code_for_an_extension(make_client_user, make_voucher):
    make_voucher(code="AWAL")
    assert_refused(preview(make_client_user(), "AWAL", kind="extension"), 400, "voucher_not_for_extension")


def test_it_answers_a_code_that_cannot_exist_as_unknown(make_client_user):
    client = make_client_user()
    for code in ("X" * 300, "kode%20promo", "%F0%9F%98%80"):
        response = auth_client(client).get(f"/api/v1/vouchers/{code}", {"package": "curhat-30"})
        assert response.status_code == 404, code
        assert response.json()["error"]["code"] == "voucher_unknown"
    # A NUL never reaches the view: the hostile-input middleware refuses the path (same for any URL).
    for code in ("%00", "A%00B"):
        response = auth_client(client).get(f"/api/v1/vouchers/{code}", {"package": "curhat-30"})
        assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_request"), code


def test_it_refuses_an_unknown_package_and_a_stranger_without_a_token(api, make_client_user, make_mitra):
    response = preview(make_client_user(), "APAPUN", "curhat-999")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "unknown_package")
    assert api.get("/api/v1/vouchers/APAPUN", {"package": "curhat-30"}).status_code == 401
    response = auth_client(make_mitra().user).get("/api/v1/vouchers/APAPUN", {"package": "curhat-30"})
    assert response.status_code == 403


def test_it_limits_how_many_unknown_codes_a_client_may_try(make_client_user, make_voucher, settings):
    settings.VOUCHER_MAX_FAILED_LOOKUPS_PER_USER = 3
    make_voucher(code="ASLI")
    client, other = make_client_user(), make_client_user()
    for attempt in range(3):
        assert preview(client, f"TEBAK{attempt}").status_code == 404
    limited = preview(client, "ASLI")  # even a real code: no oracle past the limit
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "voucher_lookup_limit"
    assert int(limited["Retry-After"]) > 0
    # Guessing through session creation counts too, and creates nothing.
    response = auth_client(client).post(
        "/api/v1/sessions", {"package": "curhat-30", "voucher_code": "TEBAK9"}, format="json"
    )
    assert response.status_code == 429
    assert ChatSession.objects.count() == 0
    assert preview(other, "ASLI").status_code == 200
    assert VoucherLookup.objects.filter(user=client).count() == 3


def test_it_limits_how_many_lookups_a_client_may_make(make_client_user, make_voucher, settings):
    settings.VOUCHER_MAX_LOOKUPS_PER_USER = 2
    make_voucher(code="ASLI")
    client = make_client_user()
    assert [preview(client, "ASLI").status_code for _ in range(3)] == [200, 200, 429]
    assert Voucher.objects.get(code="ASLI").redemptions_taken == 0
