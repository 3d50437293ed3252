"""A real browser (Playwright driving Debian's Chromium, headless) in the control center: the live
dashboard, and the live crisis alert on every page (issue 20)."""

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
from asgiref.sync import async_to_sync
from playwright.sync_api import sync_playwright

from halobestie.accounts.models import Role, User
from halobestie.audit.models import AuditEntry
from mitras.services import mitra_set_online
from sessions_app import chat_store, handoff, lifecycle, stored_message
from sessions_app.models import ChatSession, Message
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


def test_it_shows_a_crisis_alert_live_on_any_open_page_until_staff_acknowledge(
    transactional_db, make_client_user, make_mitra, make_staff, monkeypatch
):
    assert os.access(CHROMIUM, os.X_OK), "this test needs Debian's Chromium: apt-get install chromium"
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop
    support = make_staff("support")
    mitra = make_mitra()
    mitra_set_online(mitra=mitra, is_online=True)
    client = make_client_user()
    session = lifecycle.session_create(client=client, package_code="curhat-15", mitra_id=mitra.id)
    lifecycle.session_mark_paid(session_id=session.id)
    lifecycle.session_accept(session_id=session.id, mitra=mitra)

    async def send_crisis():
        try:
            return await chat_store.message_send(
                session_id=session.id, sender=stored_message.Sender(user_id=client.id),
                body="aku gak kuat lagi, pengen mati", client_msg_id=uuid.uuid4().hex,
            )  # fmt: skip
        finally:
            await chat_store.close_pools()

    with uvicorn_process("internal") as (_, internal), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{internal}/admin/login/")
        page.fill("input[name=username]", support.email)
        page.fill("input[name=password]", "staff-password-123")
        page.click("input[type=submit]")
        page.wait_for_url(f"{internal}/admin/")
        page.goto(f"{internal}/admin/mitras/mitra/")  # any page of the control center
        assert page.is_hidden("#crisis-alerts")

        # The client writes; the page, left open, shows the alert without a reload. (The send
        # runs in its own thread: Playwright's sync API holds an event loop in this one.)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(async_to_sync(send_crisis)).result(timeout=30)
        page.wait_for_selector(f"a.crisis-alert[data-session-id='{session.id}']", timeout=10_000)
        assert page.is_visible("#crisis-alerts")
        page.screenshot(path="/tmp/halobestie-crisis-alert.png")

        page.click(f"a.crisis-alert[data-session-id='{session.id}']")
        page.fill("#id_note", "Saya tangani, Bestie sudah saya hubungi.")
        page.click("#acknowledge-button")
        page.wait_for_selector("#staff-message-form")
        page.fill("#id_text", "Kami menemani kalian malam ini.")
        page.click("#staff-message-button")
        page.wait_for_load_state()
        page.wait_for_function("document.getElementById('crisis-alerts').hidden === true")
        browser.close()

    stored = ChatSession.objects.get(pk=session.id)
    assert (stored.is_flagged, stored.needs_staff_attention) == (True, False)
    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor_id")) == [
        ("acknowledge_crisis", support.id), ("staff_message", support.id),
    ]  # fmt: skip
    assert Message.objects.filter(
        session=session, body="Tim HaloBestie: Kami menemani kalian malam ini."
    ).exists()
    assert handoff.attention_list() == []


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
