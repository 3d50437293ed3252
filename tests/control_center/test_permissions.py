"""Control center permissions: least privilege per staff group, transcripts audited."""

from halobestie.audit.models import AuditEntry
from halobestie.runtime.models import RuntimeConfig
from mitras.models import Mitra
from sessions_app import lifecycle
from sessions_app.models import Message


def make_session_with_messages(make_client_user, make_mitra):
    from mitras.services import mitra_set_online

    mitra = make_mitra()
    mitra_set_online(mitra=mitra, is_online=True)
    session = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
    lifecycle.session_mark_paid(session_id=session.id)
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    session.refresh_from_db()
    Message.objects.create(
        session=session, seq=1, sender=session.client, body="rahasia curhat", created_at=session.accepted_at
    )
    return session


def test_it_refuses_the_transcript_to_support_and_audits_admins(
    internal_client, make_staff, make_client_user, make_mitra
):
    session = make_session_with_messages(make_client_user, make_mitra)
    url = f"/admin/sessions_app/chatsession/{session.id}/transcript/"

    internal_client.force_login(make_staff("support"))
    assert internal_client.get(url).status_code == 403
    assert AuditEntry.objects.filter(action="view_transcript").count() == 0

    admin = make_staff("admin")
    internal_client.force_login(admin)
    response = internal_client.get(url)
    assert response.status_code == 200
    assert b"rahasia curhat" in response.content
    internal_client.get(url)
    views = AuditEntry.objects.filter(action="view_transcript", object_id=str(session.id))
    assert views.count() == 2
    assert set(views.values_list("actor_id", flat=True)) == {admin.id}


def test_it_lets_only_admins_edit_the_runtime_config(internal_client, make_staff):
    from django.core.management import call_command

    from tests.control_center.test_config_form import field_errors, form_data

    call_command("seed")
    row = RuntimeConfig.objects.get()
    url = f"/admin/runtime/runtimeconfig/{row.pk}/change/"

    for group in ("support", "finance"):
        internal_client.force_login(make_staff(group))
        response = internal_client.post(url, form_data(row.values, offer_timeout_seconds="75"))
        assert response.status_code == 403, group
    assert RuntimeConfig.objects.get().values["offer_timeout_seconds"] == 60

    internal_client.force_login(make_staff("admin"))
    bad = internal_client.post(
        url, form_data(row.values, offer_timeout_seconds="75", mitra_share_percent="150")
    )
    assert bad.status_code == 200  # the form again, with the error
    assert field_errors(bad.content.decode(), "mitra_share_percent") == ["Harus antara 0 dan 100."]
    assert RuntimeConfig.objects.get().values["mitra_share_percent"] == 70

    ok = internal_client.post(url, form_data(row.values, offer_timeout_seconds="75"))
    assert ok.status_code == 302
    saved = RuntimeConfig.objects.get()
    assert saved.values["offer_timeout_seconds"] == 75
    assert saved.version == row.version + 1
    assert AuditEntry.objects.filter(action="update_runtime_config").count() == 1


def test_it_creates_and_deactivates_a_mitra_from_the_admin(internal_client, make_staff):
    internal_client.force_login(make_staff("admin"))
    response = internal_client.post(
        "/admin/mitras/mitra/add/",
        {
            "phone": "0812-3456-7890", "password": "sandi-awal-panjang", "display_name": "Bestie Baru",
            "bio": "Halo", "avatar_url": "", "gender": "female", "capacity": "2",
            "topics_text": "kerja, keluarga", "languages_text": "id, en",
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content[:2000]
    mitra = Mitra.objects.get(user__phone="+6281234567890")
    assert (mitra.display_name, mitra.capacity, mitra.topics, mitra.languages) == (
        "Bestie Baru", 2, ["kerja", "keluarga"], ["id", "en"],
    )  # fmt: skip
    assert mitra.user.check_password("sandi-awal-panjang")

    internal_client.post(
        "/admin/mitras/mitra/", {"action": "deactivate", "_selected_action": [str(mitra.pk)]}
    )
    mitra.refresh_from_db()
    assert mitra.deactivated_at is not None
    assert AuditEntry.objects.filter(action="mitra_deactivate", object_id=str(mitra.pk)).count() == 1


def test_it_lets_support_force_end_but_not_refund(internal_client, make_staff, make_client_user, make_mitra):
    from payments.models import Refund

    session = make_session_with_messages(make_client_user, make_mitra)
    internal_client.force_login(make_staff("support"))
    refund_url = f"/admin/sessions_app/chatsession/{session.pk}/refund/"
    assert internal_client.get(refund_url).status_code == 403
    refused = internal_client.post(refund_url, {"amount_idr": "1000", "note": "coba"})
    assert refused.status_code == 403
    assert Refund.objects.count() == 0 and AuditEntry.objects.filter(action="refund").count() == 0
    internal_client.post(
        "/admin/sessions_app/chatsession/", {"action": "force_end", "_selected_action": [str(session.pk)]}
    )
    session.refresh_from_db()
    assert (session.status, session.end_reason) == ("ended", "staff_ended")
    assert AuditEntry.objects.filter(action="force_end").count() == 1
    # a force end for no one's fault: the client gets the unserved minutes back at once
    assert list(Refund.objects.values_list("amount_idr", "reason")) == [(15000, "unserved_minutes")]


def test_it_lets_finance_refund_part_of_a_session_with_a_reason(
    internal_client, make_staff, make_client_user, make_mitra
):
    from payments.models import Refund
    from sessions_app.models import EarningsEntry, SessionEvent

    session = make_session_with_messages(make_client_user, make_mitra)
    lifecycle.session_end(session_id=session.id, actor=session.client)
    finance = make_staff("finance")
    internal_client.force_login(finance)
    url = f"/admin/sessions_app/chatsession/{session.pk}/refund/"
    page = internal_client.get(url)
    assert page.status_code == 200 and 'id="refundable">Rp15000<' in page.content.decode()

    for data, error in (
        ({"amount_idr": "5000", "note": "  "}, 'class="errorlist'),
        ({"amount_idr": "15001", "note": "lebih"}, "Jumlah refund harus antara 1 dan 15000."),
        ({"amount_idr": "-1", "note": "minus"}, 'class="errorlist'),
        ({"amount_idr": "1e3", "note": "bukan angka"}, 'class="errorlist'),
    ):
        response = internal_client.post(url, data)
        assert response.status_code == 200 and error in response.content.decode(), data
    assert Refund.objects.count() == 0 and AuditEntry.objects.filter(action="refund").count() == 0

    done = internal_client.post(url, {"amount_idr": "6000", "note": "Koneksi klien terputus"})
    assert done.status_code == 302
    refund = Refund.objects.get(session=session)
    assert (refund.amount_idr, refund.reason, refund.created_by_id) == (6000, "staff_decision", finance.id)
    audit = AuditEntry.objects.get(action="refund")
    assert audit.after == {
        "refund_id": str(refund.pk), "amount_idr": 6000, "note": "Koneksi klien terputus",
        "refunded_idr": 6000, "mitra_idr": 6300,
    }  # fmt: skip
    assert audit.before == {"refunded_idr": 0, "mitra_idr": 10500}
    entries = EarningsEntry.objects.filter(session=session).order_by("id")
    assert list(entries.values_list("kind", "amount_idr")) == [("earning", 10500), ("reversal", -4200)]
    assert SessionEvent.objects.get(session=session, kind="staff_refund").data == {
        "amount_idr": 6000, "note": "Koneksi klien terputus",
    }  # fmt: skip
    again = internal_client.post(url, {"amount_idr": "9001", "note": "sisa"})
    assert "Jumlah refund harus antara 1 dan 9000." in again.content.decode()


def test_it_shows_the_ledger_and_payouts_to_finance_and_ratings_to_support(
    internal_client, make_staff, make_client_user, make_mitra
):
    from django.utils import timezone

    from sessions_app import payouts
    from sessions_app.models import PayoutBatch

    session = make_session_with_messages(make_client_user, make_mitra)
    lifecycle.session_end(session_id=session.id, actor=session.client)
    lifecycle.session_rate(session_id=session.id, client=session.client, score=5, comment="Makasih banyak")
    month = f"{payouts.period_of(timezone.now()):%Y-%m}"
    csv_url = f"/admin/sessions_app/payoutbatch/csv/{month}/"
    record_url = "/admin/sessions_app/payoutbatch/record/"

    internal_client.force_login(make_staff("support"))
    assert internal_client.get("/admin/sessions_app/rating/").status_code == 200
    assert "Makasih banyak" in internal_client.get("/admin/sessions_app/rating/").content.decode()
    for url in (
        "/admin/sessions_app/earningsentry/",
        "/admin/sessions_app/payoutbatch/",
        csv_url,
        record_url,
    ):
        assert internal_client.get(url).status_code == 403, url
    assert internal_client.post(record_url, {"period": month, "reference": "X"}).status_code == 403
    assert PayoutBatch.objects.count() == 0

    internal_client.force_login(make_staff("finance"))
    assert "10500" in internal_client.get("/admin/sessions_app/earningsentry/").content.decode()
    listing = internal_client.get("/admin/sessions_app/payoutbatch/").content.decode()
    assert f"payout-{month}.csv" in listing and "belum dibayar" in listing
    exported = internal_client.get(csv_url)
    assert exported["Content-Type"] == "text/csv; charset=utf-8"
    assert exported.content.decode().splitlines()[1].endswith(",1,10500,0,10500")
    assert internal_client.get("/admin/sessions_app/payoutbatch/csv/2026-99/").status_code == 400
    assert internal_client.post(record_url, {"period": month, "reference": "BCA-1"}).status_code == 302
    assert PayoutBatch.objects.get().total_idr == 10500
    assert AuditEntry.objects.filter(action__in=["payout_csv_export", "payout_paid"]).count() == 2


def test_it_serves_the_dashboard_numbers(internal_client, make_staff, make_mitra):
    from mitras.services import mitra_set_online

    for _ in range(2):
        mitra_set_online(mitra=make_mitra(), is_online=True)
    internal_client.force_login(make_staff("support"))
    assert internal_client.get("/admin/dashboard/").status_code == 200
    numbers = internal_client.get("/admin/dashboard.json").json()
    assert (numbers["mitras_online"], numbers["mitras_available"], numbers["queue_waiting"]) == (2, 2, 0)


def test_it_shows_a_session_with_its_timeline_payments_and_flag(
    internal_client, make_staff, make_client_user, make_mitra
):
    from sessions_app.models import ChatSession

    session = make_session_with_messages(make_client_user, make_mitra)
    ChatSession.objects.filter(pk=session.pk).update(is_flagged=True)
    internal_client.force_login(make_staff("support"))
    listing = internal_client.get("/admin/sessions_app/chatsession/?is_flagged__exact=1")
    assert listing.status_code == 200
    assert "KRISIS" in listing.content.decode()
    page = internal_client.get(f"/admin/sessions_app/chatsession/{session.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    for sentence in ("Sesi dibuat: paket curhat-15", "Pembayaran diterima, mulai mencari Bestie"):
        assert sentence in html
    assert "Ditawarkan ke Bestie " in html and " menerima</td>" in html
    assert "SessionEvent object" not in html
    assert "15000" in html or "15.000" in html  # the session payment
    assert "rahasia curhat" not in html  # no transcript without the permission
