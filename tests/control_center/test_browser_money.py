"""A real browser (Playwright driving Debian's Chromium) in the control center's money pages:
finance refunds part of a session and exports the payout CSV; support can do neither."""

import os

from django.utils import timezone
from playwright.sync_api import sync_playwright

from mitras.services import mitra_set_online
from payments.models import Refund
from sessions_app import lifecycle, payouts
from sessions_app.models import EarningsEntry
from tests.control_center.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.servers import uvicorn_process


def login(browser, internal, user):
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(f"{internal}/admin/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", "staff-password-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"{internal}/admin/")
    return page


def test_it_lets_finance_refund_part_and_export_the_payout_and_not_support(
    transactional_db, make_staff, make_client_user, make_mitra, monkeypatch
):
    assert os.access(CHROMIUM, os.X_OK), "this test needs Debian's Chromium: apt-get install chromium"
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop
    mitra = make_mitra(display_name="Bestie Satu")
    mitra_set_online(mitra=mitra, is_online=True)
    session = lifecycle.session_create(client=make_client_user(), package_code="curhat-30")
    lifecycle.session_mark_paid(session_id=session.id)
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    lifecycle.session_end(session_id=session.id, actor=session.client)
    finance, support = make_staff("finance"), make_staff("support")
    month = f"{payouts.period_of(timezone.now()):%Y-%m}"
    refund_path = f"/admin/sessions_app/chatsession/{session.id}/refund/"
    csv_path = f"/admin/sessions_app/payoutbatch/csv/{month}/"

    with uvicorn_process("internal") as (_, internal), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)

        page = login(browser, internal, finance)
        page.goto(f"{internal}/admin/sessions_app/chatsession/{session.id}/change/")
        page.click("#refund-link")
        page.wait_for_url(f"{internal}{refund_path}")
        assert page.text_content("#refundable") == "Rp25000"
        page.fill("input[name=amount_idr]", "10000")
        page.click("input[name=_refund]")  # no reason: refused, nothing happens
        assert page.url == f"{internal}{refund_path}"
        page.fill("input[name=amount_idr]", "10000")
        page.fill("textarea[name=note]", "Koneksi Bestie bermasalah")
        page.click("input[name=_refund]")
        page.wait_for_url(f"{internal}/admin/sessions_app/chatsession/{session.id}/change/")
        assert "Refund Rp10000 dibuat." in page.content()

        page.goto(f"{internal}/admin/sessions_app/payoutbatch/")
        with page.expect_download() as download_info:
            page.click(f"a.csv-link[href$='/csv/{month}/']")
        download = download_info.value
        assert download.suggested_filename == f"payout-{month}.csv"
        with open(download.path(), encoding="utf-8") as exported:
            rows = exported.read().splitlines()
        # 17500 earned, 7000 reversed by the refund (the client keeps paying 15000: 70% is 10500)
        assert rows == [
            "period,mitra_id,display_name,phone,sessions,entries_idr,reversals_idr,total_idr",
            f"{month},{mitra.id},Bestie Satu,{mitra.user.phone},1,17500,-7000,10500",
        ]
        page.screenshot(path="/tmp/halobestie-payouts.png")

        page = login(browser, internal, support)
        assert page.goto(f"{internal}{refund_path}").status == 403
        assert page.goto(f"{internal}{csv_path}").status == 403
        assert page.goto(f"{internal}/admin/sessions_app/payoutbatch/").status == 403
        browser.close()

    assert list(Refund.objects.filter(session=session).values_list("amount_idr", "created_by_id")) == [
        (10000, finance.id)
    ]
    assert sum(EarningsEntry.objects.filter(mitra=mitra).values_list("amount_idr", flat=True)) == 10500
