"""A real browser (Playwright driving Debian's Chromium) as an admin in the runtime config form:
a wrong value shows its error next to the field, a right one is saved (a history entry, and
another process uses it at once), and a click rolls it back (issue 21). Screenshots go to
tests/artefacts/."""

import os
from pathlib import Path

import requests
from django.conf import settings
from django.core.management import call_command
from playwright.sync_api import sync_playwright

from halobestie.audit.models import AuditEntry
from halobestie.runtime.models import RuntimeConfig, RuntimeConfigChange
from tests.control_center.test_browser import CHROMIUM, CHROMIUM_ARGS, wait_for
from tests.servers import server_env, uvicorn_process

ARTEFACTS = Path(settings.BASE_DIR) / "tests" / "artefacts"


def test_it_lets_an_admin_fix_a_wrong_value_save_it_live_and_roll_it_back(
    transactional_db, make_staff, monkeypatch
):
    assert os.access(CHROMIUM, os.X_OK), "this test needs Debian's Chromium: apt-get install chromium"
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    call_command("seed")
    first = RuntimeConfig.objects.get()
    admin = make_staff("admin")
    # Another process with a long cache lifetime: only the live invalidation can make it fresh.
    other = uvicorn_process("public", env=server_env(RUNTIME_CONFIG_CACHE_SECONDS=300))
    with uvicorn_process("internal") as (_, internal), other as (_, public), sync_playwright() as playwright:
        offer_timeout = lambda: requests.get(f"{public}/api/v1/config").json()["offer_timeout_seconds"]  # noqa: E731
        assert offer_timeout() == 60
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)  # a busy machine: the servers may answer slowly
        page.goto(f"{internal}/admin/login/")
        page.fill("input[name=username]", admin.email)
        page.fill("input[name=password]", "staff-password-123")
        page.click("input[type=submit]")
        page.wait_for_url(f"{internal}/admin/")

        change_url = f"{internal}/admin/runtime/runtimeconfig/1/change/"
        page.goto(change_url)
        assert page.input_value("#id_offer_timeout_seconds") == "60"
        assert page.input_value("#id_xendit_min_invoice_idr") == "1.000"
        assert "bunuh diri" in page.input_value("#id_crisis_words").splitlines()
        page.screenshot(path=ARTEFACTS / "admin-config-form.png", full_page=True)

        page.fill("#id_offer_timeout_seconds", "5")
        page.click("input[name=_continue]")
        page.wait_for_load_state()
        error = page.locator(".field-offer_timeout_seconds .errorlist")
        assert error.text_content().strip() == "Harus antara 10 dan 3600."
        assert page.locator(".errorlist").count() == 1  # next to its field, and only there
        page.locator(".field-offer_timeout_seconds").screenshot(
            path=ARTEFACTS / "admin-config-field-error.png"
        )
        assert RuntimeConfig.objects.get().version == first.version

        page.fill("#id_offer_timeout_seconds", "45")
        page.click("input[name=_continue]")
        page.wait_for_selector(f"tr.history-entry[data-version='{first.version + 1}']")
        entry = page.locator(f"tr.history-entry[data-version='{first.version + 1}']")
        assert admin.email in entry.text_content()
        assert "60" in entry.locator("del").text_content() and "45" in entry.locator("ins").text_content()
        assert wait_for(lambda: offer_timeout() == 45, timeout=2.0)
        page.locator("#config-history").screenshot(path=ARTEFACTS / "admin-config-history.png")

        page.click(f"tr.history-entry[data-version='{first.version}'] .rollback-button")
        page.wait_for_selector(f"tr.history-entry[data-version='{first.version + 2}']")
        assert page.input_value("#id_offer_timeout_seconds") == "60"
        assert wait_for(lambda: offer_timeout() == 60, timeout=2.0)
        page.screenshot(path=ARTEFACTS / "admin-config-rolled-back.png", full_page=True)
        browser.close()

    rolled = RuntimeConfig.objects.get()
    assert (rolled.version, rolled.values) == (first.version + 2, first.values)
    assert RuntimeConfigChange.objects.get(version=rolled.version).restored_version == first.version
    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor_id")) == [
        ("update_runtime_config", admin.id), ("rollback_runtime_config", admin.id),
    ]  # fmt: skip
