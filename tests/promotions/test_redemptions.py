"""Redemptions on real PostgreSQL: the last use of a code under concurrency, reserve with the
invoice, release when it expires or fails or the session never starts, consume when paid."""

import threading

from django.db import close_old_connections, connection

from payments import services as payments
from payments.models import Payment, PaymentStatus
from promotions.models import Redemption, RedemptionStatus, Voucher
from promotions.services import VoucherRefused
from sessions_app import lifecycle as sessions
from sessions_app import timers
from sessions_app.models import ChatSession, Status
from tests.conftest import auth_client


def test_it_lets_exactly_ten_of_fifty_concurrent_clients_take_a_code_with_ten_left(
    make_client_user, make_voucher
):
    voucher = make_voucher(code="SEPULUH", max_redemptions=12)
    for _ in range(2):  # two already taken: ten left
        sessions.session_create(client=make_client_user(), package_code="curhat-30", voucher_code="SEPULUH")
    clients = [make_client_user() for _ in range(50)]
    barrier = threading.Barrier(50)
    outcomes, lock = [], threading.Lock()

    def redeem(client):
        try:
            barrier.wait()
            sessions.session_create(client=client, package_code="curhat-30", voucher_code="SEPULUH")
            outcome = "created"
        except VoucherRefused as error:
            outcome = error.code
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=redeem, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_old_connections()

    assert sorted(outcomes) == ["created"] * 10 + ["voucher_used_up"] * 40
    voucher.refresh_from_db()
    assert voucher.redemptions_taken == 12
    assert Redemption.objects.filter(voucher=voucher, status=RedemptionStatus.RESERVED).count() == 12
    winners = set(Redemption.objects.filter(client__in=clients).values_list("client_id", flat=True))
    assert len(winners) == 10
    assert ChatSession.objects.filter(client__in=clients).count() == 10
    assert set(Payment.objects.filter(session__client__in=clients).values_list("amount_idr", flat=True)) == {
        12500
    }


def test_it_reserves_with_the_invoice_and_consumes_when_paid(
    xendit, post_callback, make_client_user, make_voucher
):
    voucher = make_voucher(code="SETENGAH", max_redemptions=5)
    response = auth_client(make_client_user()).post(
        "/api/v1/sessions", {"package": "curhat-30", "voucher_code": " setengah "}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["price_idr"], body["discount_idr"]) == (25000, 12500)
    assert (body["payment"]["amount_idr"], body["payment"]["discount_idr"]) == (12500, 12500)
    [call] = xendit.calls("POST", "/v2/invoices/")
    assert call["json"]["amount"] == 12500
    redemption = Redemption.objects.get()
    assert (redemption.status, redemption.list_price_idr, redemption.discount_idr, redemption.amount_idr) == (
        RedemptionStatus.RESERVED, 25000, 12500, 12500,
    )  # fmt: skip
    assert Voucher.objects.get(pk=voucher.pk).redemptions_taken == 1

    payment = Payment.objects.get()
    assert post_callback(xendit.paid_callback(payment.invoice_id)).status_code == 200
    redemption.refresh_from_db()
    assert redemption.status == RedemptionStatus.CONSUMED
    assert redemption.consumed_at is not None
    assert ChatSession.objects.get().status == Status.MATCHING
    assert Voucher.objects.get(pk=voucher.pk).redemptions_taken == 1


def test_it_releases_the_code_when_the_invoice_expires(xendit, post_callback, make_client_user, make_voucher):
    voucher = make_voucher(code="TERAKHIR", max_redemptions=1)
    first, second = make_client_user(), make_client_user()
    sessions.session_create(client=first, package_code="curhat-30", voucher_code="TERAKHIR")
    try:
        sessions.session_create(client=second, package_code="curhat-30", voucher_code="TERAKHIR")
        raise AssertionError("the last use was taken twice")
    except VoucherRefused as error:
        assert error.code == "voucher_used_up"

    payment = Payment.objects.get(session__client=first)
    assert post_callback(xendit.expired_callback(payment.invoice_id)).status_code == 200
    redemption = Redemption.objects.get(client=first)
    assert (redemption.status, redemption.release_reason) == (RedemptionStatus.RELEASED, "payment_expired")
    assert Voucher.objects.get(pk=voucher.pk).redemptions_taken == 0
    assert ChatSession.objects.get(client=first).status == Status.CANCELLED

    session = sessions.session_create(client=second, package_code="curhat-30", voucher_code="TERAKHIR")
    assert session.discount_idr == 12500
    assert Voucher.objects.get(pk=voucher.pk).redemptions_taken == 1
    # A late EXPIRED repeat releases nothing twice.
    assert post_callback(xendit.expired_callback(payment.invoice_id)).status_code == 200
    assert Voucher.objects.get(pk=voucher.pk).redemptions_taken == 1


def test_it_releases_the_code_when_the_local_checkout_fails(make_client_user, make_voucher):
    voucher = make_voucher(code="GAGAL", max_redemptions=1)
    sessions.session_create(client=make_client_user(), package_code="curhat-30", voucher_code="GAGAL")
    payments.local_checkout_complete(external_id=Payment.objects.get().external_id, is_paid=False)
    assert Payment.objects.get().status == PaymentStatus.FAILED
    assert Redemption.objects.get().status == RedemptionStatus.RELEASED
    assert Voucher.objects.get(pk=voucher.pk).redemptions_taken == 0


def test_it_releases_the_code_when_the_client_cancels_before_paying(make_client_user, make_voucher):
    voucher = make_voucher(code="BATAL", max_redemptions=1)
    client = make_client_user()
    session = sessions.session_create(client=client, package_code="curhat-30", voucher_code="BATAL")
    sessions.session_end(session_id=session.pk, actor=client)
    assert Redemption.objects.get().status == RedemptionStatus.RELEASED
    assert Voucher.objects.get(pk=voucher.pk).redemptions_taken == 0
    # The invoice expiring later changes nothing more.
    payments.local_checkout_complete(external_id=Payment.objects.get().external_id, is_paid=False)
    assert Voucher.objects.get(pk=voucher.pk).redemptions_taken == 0


def test_it_releases_a_paid_code_when_no_bestie_took_the_session(make_client_user, make_voucher, set_config):
    voucher = make_voucher(code="SABAR", max_redemptions=1)
    session = sessions.session_create(
        client=make_client_user(), package_code="curhat-30", voucher_code="SABAR"
    )
    payments.local_checkout_complete(external_id=Payment.objects.get().external_id, is_paid=True)
    assert Redemption.objects.get().status == RedemptionStatus.CONSUMED
    ChatSession.objects.filter(pk=session.pk).update(
        matching_started_at=ChatSession.objects.get(pk=session.pk).matching_started_at.replace(year=2020)
    )
    assert timers.matching_expire_due() == 1
    assert ChatSession.objects.get(pk=session.pk).status == Status.UNMATCHED
    redemption = Redemption.objects.get()
    assert (redemption.status, redemption.release_reason) == (RedemptionStatus.RELEASED, "no_mitra")
    assert Voucher.objects.get(pk=voucher.pk).redemptions_taken == 0
    assert session.refunds.get().amount_idr == 12500


def test_it_keeps_the_code_used_when_a_session_that_ran_is_refunded(
    make_client_user, make_voucher, serve_session
):
    voucher = make_voucher(code="DIPAKAI", max_redemptions=1)
    session = sessions.session_create(
        client=make_client_user(), package_code="curhat-30", voucher_code="DIPAKAI"
    )
    payments.local_checkout_complete(external_id=Payment.objects.get().external_id, is_paid=True)
    session = serve_session(session)
    payments.refund_create(session=session, reason="staff_goodwill")
    assert Redemption.objects.get().status == RedemptionStatus.CONSUMED
    assert Voucher.objects.get(pk=voucher.pk).redemptions_taken == 1
