"""Each role's daily path in a real browser (Playwright driving Debian's Chromium, headless),
against the internal and public listeners as separate processes (issue 21):

- support sees a waiting client and an online Bestie by name on the dashboard and follows the
  links, sees the page go stale and recover, acknowledges a crisis, and hands a Bestie a one-time
  password reset link the Bestie uses;
- finance sees failed and flagged payments and refunds to review, and follows the link;
- an admin creates a support account (no superuser involved), which then signs in.

Screenshots go to tests/artefacts/<test>/ (ignored by git; HALOBESTIE_TEST_ARTEFACTS moves it).
"""

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from playwright.sync_api import sync_playwright

from halobestie.accounts.models import User
from halobestie.accounts.services import user_update_profile
from halobestie.audit.models import AuditEntry
from mitras.services import mitra_set_online
from payments.models import Payment
from payments.services import local_checkout_complete
from sessions_app import chat_store, lifecycle, stored_message
from sessions_app.models import ChatSession
from tests.servers import server_env, uvicorn_process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
# This branch's port range (4300-4399): fixed, so parallel runs of other branches never collide.
PUBLIC_PORT, INTERNAL_PORT = 4341, 4342
STAFF_PASSWORD = "staff-password-123"


@pytest.fixture
def artefacts(request):
    root = Path(os.environ.get("HALOBESTIE_TEST_ARTEFACTS", settings.BASE_DIR / "tests" / "artefacts"))
    folder = root / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


@pytest.fixture
def browser(monkeypatch):
    assert os.access(CHROMIUM, os.X_OK), "this test needs Debian's Chromium: apt-get install chromium"
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def sign_in(browser, internal, email, password=STAFF_PASSWORD):
    page = browser.new_context().new_page()
    page.goto(f"{internal}/admin/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{internal}/admin/")
    return page


def named(user, name):
    return user_update_profile(user=user, display_name=name)


def send_crisis_message(session, client):
    async def send():
        try:
            return await chat_store.message_send(
                session_id=session.id, sender=stored_message.Sender(user_id=client.id),
                body="aku gak kuat lagi, pengen mati", client_msg_id=uuid.uuid4().hex,
            )  # fmt: skip
        finally:
            await chat_store.close_pools()

    # In its own thread: Playwright's sync API holds an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(async_to_sync(send)).result(timeout=30)


def test_it_walks_supports_day(
    transactional_db, browser, artefacts, make_staff, make_mitra, make_client_user
):
    support = make_staff("support")
    ayu = make_mitra(display_name="Ayu", capacity=1, password="sandi-lama-ayu-1")
    mitra_set_online(mitra=ayu, is_online=True)
    budi = named(make_client_user(), "Budi")
    busy = lifecycle.session_create(client=budi, package_code="curhat-15")
    lifecycle.session_mark_paid(session_id=busy.id)
    lifecycle.session_accept(session_id=busy.id, mitra=ayu)
    rani = named(make_client_user(), "Rani")
    waiting = lifecycle.session_create(client=rani, package_code="curhat-30", gender="female")
    lifecycle.session_mark_paid(session_id=waiting.id)  # Ayu is full: Rani waits
    assert ChatSession.objects.get(pk=waiting.id).status == "matching"

    internal_env = server_env(PUBLIC_BASE_URL=f"http://127.0.0.1:{PUBLIC_PORT}")  # the links it makes
    with (
        uvicorn_process("public", port=PUBLIC_PORT) as (_, public),
        uvicorn_process("internal", port=INTERNAL_PORT, env=internal_env) as (_, internal),
    ):
        page = sign_in(browser, internal, support.email)
        page.click("#dashboard-link")
        rani_link = page.locator("#list-waiting a.waiting-row-link", has_text="Rani")
        rani_link.wait_for()
        row = page.locator(f"#list-waiting tr[data-session-id='{waiting.id}']")
        assert row.locator("td").nth(0).text_content() == "1"
        assert "gender: Perempuan" in row.text_content()
        ayu_link = page.locator("#list-online a.mitra-row-link", has_text="Ayu")
        assert ayu_link.is_visible()
        assert "1/1" in page.locator(f"#list-online tr[data-mitra-id='{ayu.pk}']").text_content()
        assert page.is_hidden("#section-refunds")  # not support's
        page.screenshot(path=artefacts / "01-dashboard.png", full_page=True)

        # The refresh fails: the page says since when it is stale, and recovers.
        page.route("**/dashboard.json", lambda route: route.abort())
        page.wait_for_selector("#stale-banner", state="visible", timeout=10_000)
        assert "WIB" in page.text_content("#stale-since")
        page.screenshot(path=artefacts / "02-stale.png")
        page.unroute("**/dashboard.json")
        page.wait_for_selector("#stale-banner", state="hidden", timeout=10_000)

        rani_link.click()
        page.wait_for_url(f"{internal}/admin/sessions_app/chatsession/{waiting.id}/change/")
        assert "Pembayaran diterima, mulai mencari Bestie" in page.text_content("#session-timeline")
        page.screenshot(path=artefacts / "03-waiting-session.png", full_page=True)

        # A crisis comes in: the dashboard lists it; support acknowledges it.
        send_crisis_message(busy, budi)
        page.goto(f"{internal}/admin/dashboard/")
        crisis = page.locator(f"#list-crisis tr[data-session-id='{busy.id}'] a.crisis-row-link")
        crisis.wait_for(timeout=10_000)
        page.screenshot(path=artefacts / "04-crisis-on-dashboard.png", full_page=True)
        crisis.click()
        page.fill("#id_note", "Saya tangani, Bestie sudah saya hubungi.")
        page.click("#acknowledge-button")
        page.wait_for_selector("#staff-message-form")
        page.screenshot(path=artefacts / "05-crisis-acknowledged.png", full_page=True)
        page.goto(f"{internal}/admin/dashboard/")
        page.wait_for_selector("#list-crisis td.empty")

        # Ayu forgot her password: support makes the one-time link, Ayu uses it.
        page.locator("#list-online a.mitra-row-link", has_text="Ayu").click()
        page.wait_for_url(f"{internal}/admin/mitras/mitra/{ayu.pk}/change/")
        page.click("#mitra-password-reset-link")
        page.click("#make-reset-link")
        link = page.input_value("#reset-link")
        assert link.startswith(f"{public}/mitra/password-reset/")
        page.screenshot(path=artefacts / "06-reset-link.png")

        bestie = browser.new_context().new_page()
        bestie.goto(link)
        assert "Halo Ayu" in bestie.content()
        bestie.fill("#password", "sandi-baru-ayu-77")
        bestie.fill("#password_again", "sandi-baru-ayu-77")
        bestie.click("#save")
        bestie.wait_for_selector("#done")
        bestie.screenshot(path=artefacts / "07-bestie-new-password.png")
        bestie.goto(link)
        assert bestie.is_visible("#invalid")  # once only

    ayu.user.refresh_from_db()
    assert ayu.user.check_password("sandi-baru-ayu-77")
    stored = ChatSession.objects.get(pk=busy.id)
    assert (stored.is_flagged, stored.needs_staff_attention) == (True, False)
    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor_id")) == [
        ("acknowledge_crisis", support.id),
        ("mitra_password_reset_link", support.id),
        ("mitra_password_reset", ayu.user_id),
    ]


def test_it_walks_finances_day(transactional_db, browser, artefacts, make_staff, make_client_user):
    finance = make_staff("finance")
    tono = named(make_client_user(), "Tono")
    late = lifecycle.session_create(client=tono, package_code="curhat-15")
    lifecycle.session_cancel_unpaid(session_id=late.id)
    late_payment = Payment.objects.get(session=late)
    local_checkout_complete(external_id=late_payment.external_id, is_paid=True)  # paid after close
    umi = named(make_client_user(), "Umi")
    failed = lifecycle.session_create(client=umi, package_code="curhat-30")
    failed_payment = Payment.objects.get(session=failed)
    local_checkout_complete(external_id=failed_payment.external_id, is_paid=False)

    with uvicorn_process("internal", port=INTERNAL_PORT) as (_, internal):
        page = sign_in(browser, internal, finance.email)
        page.goto(f"{internal}/admin/dashboard/")
        flagged = page.locator("#list-payments a.payment-row-link", has_text=late_payment.external_id)
        flagged.wait_for()
        flagged_row = page.locator(f"#list-payments tr[data-payment-id='{late_payment.pk}']")
        assert "paid_after_close" in flagged_row.text_content()
        failed_row = page.locator(f"#list-payments tr[data-payment-id='{failed_payment.pk}']")
        assert "Umi" in failed_row.text_content() and "Gagal" in failed_row.text_content()
        refund_row = page.locator("#list-refunds tr", has_text="Tono")
        assert "Rp15.000" in refund_row.text_content()
        assert page.is_hidden("#section-online") and page.is_hidden("#section-crisis")
        page.screenshot(path=artefacts / "01-dashboard.png", full_page=True)

        flagged.click()
        page.wait_for_url(f"{internal}/admin/payments/payment/{late_payment.pk}/change/")
        page.screenshot(path=artefacts / "02-flagged-payment.png", full_page=True)
        page.goto(f"{internal}/admin/dashboard/")
        page.locator("#list-refunds a.refund-row-link").first.click()
        page.wait_for_url(f"{internal}/admin/payments/refund/**")
        page.screenshot(path=artefacts / "03-refund-to-review.png", full_page=True)


def test_it_lets_an_admin_create_a_support_account(transactional_db, browser, artefacts, make_staff):
    admin = make_staff("admin")
    with uvicorn_process("internal", port=INTERNAL_PORT) as (_, internal):
        page = sign_in(browser, internal, admin.email)
        page.goto(f"{internal}/admin/accounts/user/add/")
        options = page.locator("#id_group option").all_text_contents()
        assert "admin" not in options and "support" in options
        page.fill("#id_email", "dewi@halobestie.test")
        page.fill("#id_display_name", "Dewi")
        page.select_option("#id_group", label="support")
        page.fill("#id_password1", "sandi-dewi-panjang-1")
        page.fill("#id_password2", "sandi-dewi-panjang-1")
        page.screenshot(path=artefacts / "01-add-support.png", full_page=True)
        page.click("input[name=_save]")
        page.wait_for_url(f"{internal}/admin/accounts/user/*/change/")
        page.screenshot(path=artefacts / "02-created.png", full_page=True)

        dewi = User.objects.get(email="dewi@halobestie.test")
        assert list(dewi.groups.values_list("name", flat=True)) == ["support"]
        page = sign_in(browser, internal, "dewi@halobestie.test", "sandi-dewi-panjang-1")
        page.goto(f"{internal}/admin/dashboard/")
        page.wait_for_selector("#section-waiting", state="visible")
        page.screenshot(path=artefacts / "03-new-support-dashboard.png", full_page=True)
    assert AuditEntry.objects.get(action="staff_user_create").actor_id == admin.id
