"""The live dashboard: people with links, one definition of "online" (the beacon's), and each
list only for the staff allowed to open its rows."""

from datetime import timedelta

from django.utils import timezone

from halobestie.accounts.services import user_update_profile
from mitras.selectors import availability_compute
from mitras.services import mitra_set_online
from payments.models import Payment
from payments.services import local_checkout_complete
from sessions_app import lifecycle


def client_named(make_client_user, name):
    return user_update_profile(user=make_client_user(), display_name=name)


def test_it_counts_and_lists_online_as_the_beacon_does(internal_client, make_staff, make_mitra, valkey):
    fresh = make_mitra(display_name="Ayu")
    stale = make_mitra(display_name="Budi")
    mitra_set_online(mitra=fresh, is_online=True)
    mitra_set_online(mitra=stale, is_online=True, now=timezone.now() - timedelta(minutes=30))
    make_mitra(display_name="Citra")  # switched off

    internal_client.force_login(make_staff("support"))
    data = internal_client.get("/admin/dashboard.json").json()

    beacon = availability_compute()
    assert (
        (data["mitras_online"], data["mitras_available"]) == (beacon["online"], beacon["available"]) == (1, 1)
    )
    [row] = data["lists"]["online"]
    assert (row["name"], row["load"], row["capacity"], row["is_available"]) == ("Ayu", 0, 3, True)
    assert 0 <= row["heartbeat_age_seconds"] < 5
    assert row["url"] == f"/admin/mitras/mitra/{fresh.pk}/change/"
    assert row["rest_until"] is None

    # A Bestie cooling down after a crisis is present but not available: the row says until when.
    rest_until = timezone.now() + timedelta(minutes=15)
    type(fresh).objects.filter(pk=fresh.pk).update(rest_until=rest_until, rest_reason="crisis")
    data = internal_client.get("/admin/dashboard.json").json()
    [row] = data["lists"]["online"]
    assert row["rest_until"] == timezone.localtime(rest_until).strftime("%H:%M:%S")
    assert (
        row["is_available"] is False and data["mitras_available"] == availability_compute()["available"] == 0
    )


def test_it_lists_waiting_clients_in_queue_order_with_their_wishes(
    internal_client, make_staff, make_client_user
):
    first = lifecycle.session_create(
        client=client_named(make_client_user, "Rani"), package_code="curhat-15", gender="female"
    )
    second = lifecycle.session_create(client=client_named(make_client_user, "Sari"), package_code="curhat-30")
    lifecycle.session_mark_paid(session_id=first.id)
    lifecycle.session_mark_paid(session_id=second.id)

    internal_client.force_login(make_staff("support"))
    waiting = internal_client.get("/admin/dashboard.json").json()["lists"]["waiting"]

    assert [(r["position"], r["client"], r["package"]) for r in waiting] == [
        (1, "Rani", "curhat-15"), (2, "Sari", "curhat-30"),
    ]  # fmt: skip
    assert waiting[0]["wishes"] == "gender: Perempuan"
    assert waiting[1]["wishes"] == "–"
    assert waiting[0]["url"] == f"/admin/sessions_app/chatsession/{first.id}/change/"
    assert all(r["waited_seconds"] >= 0 for r in waiting)


def test_it_shows_finance_the_payments_and_refunds_needing_a_human(
    internal_client, make_staff, make_client_user
):
    # Paid after the client cancelled: the payment is flagged and a refund waits for staff.
    late = lifecycle.session_create(client=client_named(make_client_user, "Tono"), package_code="curhat-15")
    lifecycle.session_cancel_unpaid(session_id=late.id)
    late_payment = Payment.objects.get(session=late)
    local_checkout_complete(external_id=late_payment.external_id, is_paid=True)
    # Failed at the checkout.
    failed = lifecycle.session_create(client=client_named(make_client_user, "Umi"), package_code="curhat-30")
    failed_payment = Payment.objects.get(session=failed)
    local_checkout_complete(external_id=failed_payment.external_id, is_paid=False)

    internal_client.force_login(make_staff("finance"))
    lists = internal_client.get("/admin/dashboard.json").json()["lists"]

    payments = {r["client"]: r for r in lists["payments"]}
    assert set(payments) == {"Tono", "Umi"}
    assert payments["Tono"]["problem"].startswith("paid_after_close")
    assert payments["Tono"]["amount"] == "Rp15.000"
    assert payments["Umi"]["status"] == "Gagal"
    assert payments["Umi"]["url"] == f"/admin/payments/payment/{failed_payment.pk}/change/"
    [refund] = lists["refunds"]
    assert (refund["kind"], refund["client"], refund["amount"]) == ("refund", "Tono", "Rp15.000")
    assert refund["url"].startswith("/admin/payments/refund/")
    # Finance opens no mitra pages and handles no crisis: those lists are not theirs.
    assert (lists["online"], lists["crisis"]) == (None, None)


def test_it_keeps_money_lists_from_support_and_people_lists_from_nobody_allowed(internal_client, make_staff):
    internal_client.force_login(make_staff("support"))
    lists = internal_client.get("/admin/dashboard.json").json()["lists"]
    assert lists["refunds"] is None
    assert lists["online"] == lists["waiting"] == lists["crisis"] == lists["payments"] == []


def test_it_answers_in_a_fixed_number_of_queries(
    internal_client, make_staff, make_client_user, make_mitra, django_assert_max_num_queries
):
    for number in range(4):
        mitra_set_online(mitra=make_mitra(), is_online=True)
        session = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
        lifecycle.session_cancel_unpaid(session_id=session.id)
        local_checkout_complete(external_id=Payment.objects.get(session=session).external_id, is_paid=True)
    internal_client.force_login(make_staff("admin"))
    with django_assert_max_num_queries(30):
        data = internal_client.get("/admin/dashboard.json").json()
    assert (len(data["lists"]["online"]), len(data["lists"]["payments"]), len(data["lists"]["refunds"])) == (
        4,
        4,
        4,
    )
