"""The session timeline reads like a story: Indonesian sentences, the actor, seconds in
Asia/Jakarta, a link to the payment, refund or report behind an event."""

import re

from halobestie.accounts.services import user_update_profile
from mitras.services import mitra_set_online
from payments.models import Payment, Refund
from sessions_app import lifecycle
from sessions_app.models import SessionEvent
from sessions_app.timeline import kind_label, session_timeline
from tests.payments.conftest import post_callback, xendit  # noqa: F401 (fixtures)

SECONDS_WIB = re.compile(r"^\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2} WIB$")


def test_it_tells_a_paid_session_as_sentences_with_links(xendit, post_callback, make_client_user, make_mitra):  # noqa: F811
    client = user_update_profile(user=make_client_user(), display_name="Rani")
    ayu = make_mitra(display_name="Ayu")
    mitra_set_online(mitra=ayu, is_online=True)
    session = lifecycle.session_create(client=client, package_code="curhat-15")
    payment = Payment.objects.get(session=session)
    assert post_callback(xendit.paid_callback(payment.invoice_id, amount=15000)).status_code == 200
    lifecycle.session_accept(session_id=session.id, mitra=ayu)
    lifecycle.session_end(session_id=session.id, actor=client)
    lifecycle.session_report(session_id=session.id, reporter=client, reason="harassment")

    story = session_timeline(session=session)
    sentences = [entry.sentence for entry in story]
    assert sentences[:6] == [
        "Sesi dibuat: paket curhat-15",
        "Dibayar Rp15.000 via Xendit (QR_CODE QRIS)",
        "Pembayaran diterima, mulai mencari Bestie",
        "Ditawarkan ke Bestie Ayu",
        "Bestie Ayu menerima",
        "Sesi berakhir: diakhiri klien",
    ]
    assert "Laporan dibuat: pelecehan" in sentences
    by_sentence = {entry.sentence: entry for entry in story}
    assert by_sentence["Sesi dibuat: paket curhat-15"].actor == "Klien Rani"
    assert by_sentence["Bestie Ayu menerima"].actor == "Bestie Ayu"
    assert by_sentence["Ditawarkan ke Bestie Ayu"].actor == "Sistem"
    paid = by_sentence["Dibayar Rp15.000 via Xendit (QR_CODE QRIS)"]
    assert paid.link.url == f"/admin/payments/payment/{payment.pk}/change/"
    report = by_sentence["Laporan dibuat: pelecehan"].link
    assert report.url.startswith("/admin/sessions_app/report/")
    refunds = list(Refund.objects.filter(session=session))
    for refund in refunds:  # ended early: the unserved minutes go back
        entry = next(e for e in story if e.kind == "refund_created" and str(refund.pk)[:8] in e.link.text)
        assert entry.sentence.startswith("Refund Rp")
    assert all(SECONDS_WIB.match(entry.time) for entry in story)
    assert all("{" not in entry.sentence and "_" not in entry.label for entry in story)


def test_it_names_an_event_kind_it_does_not_know_in_words():
    assert kind_label("offer_accepted_late") == "Offer accepted late"
    assert kind_label("payment_paid") == "Dibayar"


def test_it_reads_a_long_story_in_as_many_queries_as_a_short_one(
    make_client_user, make_mitra, django_assert_num_queries
):
    short = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
    long = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
    lifecycle.session_mark_paid(session_id=long.id)
    for number in range(3):
        mitra = make_mitra(display_name=f"Ayu {number}")
        mitra_set_online(mitra=mitra, is_online=True)  # offered to this one ...
        lifecycle.session_decline(session_id=long.id, mitra=mitra)  # ... who declines
    assert SessionEvent.objects.filter(session=long).count() == 8

    with django_assert_num_queries(5):
        assert len(session_timeline(session=short)) == 1
    with django_assert_num_queries(5):
        story = session_timeline(session=long)
    assert [e.sentence for e in story][-2:] == [
        "Ditawarkan ke Bestie Ayu 2",
        "Bestie Ayu 2 menolak tawaran",
    ]


def test_it_shows_the_story_on_the_session_page_not_raw_events(
    internal_client, make_staff, make_client_user, make_mitra
):
    ayu = make_mitra(display_name="Ayu")
    mitra_set_online(mitra=ayu, is_online=True)
    session = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
    lifecycle.session_mark_paid(session_id=session.id)
    lifecycle.session_decline(session_id=session.id, mitra=ayu)
    assert SessionEvent.objects.filter(session=session).count() == 4

    internal_client.force_login(make_staff("support"))
    html = internal_client.get(f"/admin/sessions_app/chatsession/{session.pk}/change/").content.decode()
    assert "Ditawarkan ke Bestie Ayu" in html
    assert "Bestie Ayu menolak tawaran" in html
    assert "SessionEvent object" not in html
    assert '"mitra_id"' not in html
