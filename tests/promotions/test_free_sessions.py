"""A voucher covering the whole price: no invoice at Xendit, a zero-amount payment for the books,
straight to matching; the same for an extension. And the mitra's share on list or paid price."""

from payments.models import Payment, PaymentStatus
from promotions.models import Redemption, RedemptionStatus, Voucher
from sessions_app import lifecycle as sessions
from sessions_app.models import ChatSession, EarningsEntry, SessionEvent, Status
from tests.conftest import auth_client


def test_it_sends_a_free_session_straight_to_matching_without_an_invoice(
    xendit, make_client_user, make_voucher
):
    voucher = make_voucher(code="GRATIS", discount_value=100, max_redemptions=1)
    response = auth_client(make_client_user()).post(
        "/api/v1/sessions", {"package": "curhat-30", "voucher_code": "GRATIS"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["price_idr"], body["discount_idr"]) == ("matching", 25000, 25000)
    assert xendit.requests == []
    payment = Payment.objects.get()
    assert (payment.amount_idr, payment.discount_idr, payment.status, payment.invoice_url) == (
        0, 25000, PaymentStatus.PAID, "",
    )  # fmt: skip
    assert (payment.paid_amount_idr, payment.payment_method) == (0, "VOUCHER")
    session = ChatSession.objects.get()
    assert session.paid_at is not None and session.matching_started_at is not None
    assert Redemption.objects.get().status == RedemptionStatus.CONSUMED
    assert Voucher.objects.get(pk=voucher.pk).redemptions_taken == 1
    assert list(SessionEvent.objects.filter(session=session).values_list("kind", flat=True)) == [
        "payment_free", "created", "paid",
    ]  # fmt: skip


def test_it_offers_a_free_session_to_a_bestie_and_books_earnings_on_the_list_price(
    make_client_user, make_voucher, serve_session
):
    make_voucher(code="GRATIS", discount_value=100)
    session = sessions.session_create(
        client=make_client_user(), package_code="curhat-30", voucher_code="GRATIS"
    )
    session = serve_session(session)
    assert session.status == Status.ENDED
    entry = EarningsEntry.objects.get(session=session)
    assert (entry.price_basis, entry.basis_amount_idr, entry.share_percent, entry.amount_idr) == (
        "list_price", 25000, 70, 17500,
    )  # fmt: skip


def test_it_books_earnings_on_the_paid_price_when_configured(
    make_client_user, make_voucher, serve_session, set_config
):
    set_config(mitra_share_basis="paid_price")
    make_voucher(code="SETENGAH", discount_value=50)
    session = sessions.session_create(
        client=make_client_user(), package_code="curhat-30", voucher_code="SETENGAH"
    )
    sessions.session_mark_paid(session_id=session.pk)
    session = serve_session(session)
    entry = EarningsEntry.objects.get(session=session)
    assert (entry.price_basis, entry.basis_amount_idr, entry.amount_idr) == ("paid_price", 12500, 8750)


def test_it_refuses_an_unknown_share_basis(set_config):
    import pytest
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        set_config(mitra_share_basis="gratis")
    assert "mitra_share_basis" in refused.value.message_dict


def test_it_applies_a_free_extension_at_once_without_an_invoice(
    xendit, make_client_user, make_voucher, serve_session
):
    make_voucher(code="TAMBAH", discount_value=100, applies_to_extensions=True)
    client = make_client_user()
    session = sessions.session_create(client=client, package_code="curhat-30")
    sessions.session_mark_paid(session_id=session.pk)
    session = serve_session(session, end=False)
    ends_at = session.ends_at
    invoices_before = len(xendit.calls("POST", "/v2/invoices/"))

    response = auth_client(client).post(
        f"/api/v1/sessions/{session.pk}/extend",
        {"package": "curhat-15", "voucher_code": "TAMBAH"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["amount_idr"], body["discount_idr"], body["invoice_url"]) == (
        "paid", 0, 15000, "",
    )  # fmt: skip
    assert len(xendit.calls("POST", "/v2/invoices/")) == invoices_before
    session.refresh_from_db()
    assert (session.ends_at - ends_at).total_seconds() == 15 * 60
    assert (session.extensions_total_idr, session.discount_idr) == (15000, 15000)
    sessions.session_end(session_id=session.pk, actor=client)
    assert EarningsEntry.objects.get(session=session).basis_amount_idr == 40000


def test_it_invoices_an_extension_at_the_discounted_price(
    xendit, post_callback, make_client_user, make_voucher, serve_session
):
    make_voucher(code="LANJUT", discount_kind="fixed", discount_value=5000, applies_to_extensions=True)
    client = make_client_user()
    session = sessions.session_create(client=client, package_code="curhat-30")
    sessions.session_mark_paid(session_id=session.pk)
    session = serve_session(session, end=False)
    response = auth_client(client).post(
        f"/api/v1/sessions/{session.pk}/extend",
        {"package": "curhat-15", "voucher_code": "LANJUT"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert xendit.calls("POST", "/v2/invoices/")[-1]["json"]["amount"] == 10000
    payment = Payment.objects.get(kind="extension")
    assert post_callback(xendit.paid_callback(payment.invoice_id)).status_code == 200
    session.refresh_from_db()
    assert (session.extensions_total_idr, session.discount_idr) == (15000, 5000)
    assert Redemption.objects.get(payment=payment).status == RedemptionStatus.CONSUMED
