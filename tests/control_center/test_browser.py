"""A real browser (Playwright driving Debian's Chromium, headless) in the control center."""

import os
import time

import requests
from playwright.sync_api import sync_playwright

from halobestie.accounts.models import Role, User
from mitras.services import mitra_set_online
from tests.servers import uvicorn_process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def wait_for(predicate, timeout=8.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_it_deactivates_a_mitra_and_the_dashboard_and_beacon_follow(
    transactional_db, make_mitra, monkeypatch
):
    assert os.access(CHROMIUM, os.X_OK), "this test needs Debian's Chromium: apt-get install chromium"
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop
    User.objects.create_superuser(email="boss@halobestie.test", password="boss-password-123")
    first, second = make_mitra(display_name="Bestie Satu"), make_mitra(display_name="Bestie Dua")
    for mitra in (first, second):
        mitra_set_online(mitra=mitra, is_online=True)
    assert User.objects.filter(role=Role.MITRA).count() == 2

    with uvicorn_process("public") as (_, public), uvicorn_process("internal") as (_, internal):
        beacon = lambda: requests.get(f"{public}/api/v1/availability").json()  # noqa: E731
        assert beacon()["available"] == 2
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"{internal}/admin/login/")
            page.fill("input[name=username]", "boss@halobestie.test")
            page.fill("input[name=password]", "boss-password-123")
            page.click("input[type=submit]")
            page.wait_for_url(f"{internal}/admin/")

            page.goto(f"{internal}/admin/dashboard/")
            page.wait_for_function("document.getElementById('mitras_online').textContent === '2'")
            assert page.text_content("#mitras_available") == "2"

            page.goto(f"{internal}/admin/mitras/mitra/")
            page.check(f"input.action-select[value='{first.pk}']")
            page.select_option("select[name=action]", "deactivate")
            page.click("button[name=index]")
            page.wait_for_load_state()
            assert "dinonaktifkan" in page.content()

            page.goto(f"{internal}/admin/dashboard/")
            page.wait_for_function("document.getElementById('mitras_online').textContent === '1'")
            assert page.text_content("#mitras_deactivated") == "1"
            page.screenshot(path="/tmp/halobestie-dashboard.png")
            browser.close()
        assert wait_for(lambda: beacon()["available"] == 1)


def test_it_lets_finance_create_a_campaign_and_see_its_redemptions(
    transactional_db, make_staff, make_client_user, monkeypatch
):
    from django.utils import timezone

    from payments.models import Payment
    from payments.services import local_checkout_complete
    from promotions.models import Campaign, Voucher
    from sessions_app.lifecycle import session_create

    assert os.access(CHROMIUM, os.X_OK), "this test needs Debian's Chromium: apt-get install chromium"
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    finance = make_staff("finance")
    today = timezone.localtime().date()

    with uvicorn_process("internal") as (_, internal), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{internal}/admin/login/")
        page.fill("input[name=username]", finance.email)
        page.fill("input[name=password]", "staff-password-123")
        page.click("input[type=submit]")
        page.wait_for_url(f"{internal}/admin/")

        page.goto(f"{internal}/admin/promotions/campaign/add/")
        page.fill("#id_name", "Promo Kenalan")
        page.select_option("#id_discount_kind", "fixed")
        page.fill("#id_discount_value", "10000")
        page.check("input[name=valid_packages][value='curhat-30']")
        page.fill("#id_starts_at_0", today.isoformat())
        page.fill("#id_starts_at_1", "00:00:00")
        page.fill("#id_ends_at_0", today.replace(year=today.year + 1).isoformat())
        page.fill("#id_ends_at_1", "00:00:00")
        page.check("#id_is_first_session_only")
        page.fill("#id_vouchers-0-code", "kenalan")
        page.fill("#id_vouchers-0-max_redemptions", "2")
        page.click("input[name=_save]")
        page.wait_for_url(f"{internal}/admin/promotions/campaign/")
        assert "Promo Kenalan" in page.content()

        campaign = Campaign.objects.get(name="Promo Kenalan")
        assert Voucher.objects.get(campaign=campaign).code == "KENALAN"
        for _ in range(2):
            session = session_create(
                client=make_client_user(), package_code="curhat-30", voucher_code="KENALAN"
            )
            local_checkout_complete(
                external_id=Payment.objects.get(session=session).external_id, is_paid=True
            )

        page.goto(f"{internal}/admin/promotions/campaign/")
        row = page.locator("#result_list tbody tr", has_text="Promo Kenalan")
        assert row.locator("td.field-redemption_count").text_content() == "2"
        assert row.locator("td.field-discount_given").text_content() == "20.000"
        assert row.locator("td.field-session_count").text_content() == "2"
        page.screenshot(path="/tmp/halobestie-campaigns.png")
        browser.close()
