"""The runtime config as a typed form (one field per schema key, errors next to their field), its
change history and the one-click rollback (issue 21)."""

import re

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import translation

from halobestie.audit.models import AuditEntry
from halobestie.runtime.forms import form_field, runtime_config_form
from halobestie.runtime.models import RuntimeConfig, RuntimeConfigChange
from halobestie.runtime.schema import FIELD_INFO, KINDS, config_keys, field_info
from halobestie.runtime.selectors import get_config
from halobestie.runtime.services import runtime_config_rollback, runtime_config_update

URL = "/admin/runtime/runtimeconfig/1/change/"


def form_data(values, **changes):
    """What the browser posts: every field as its widget shows it, with `changes` typed over."""
    form = runtime_config_form()()
    data = {name: form.fields[name].prepare_value(values[name]) for name in config_keys()}
    return {**data, **changes}


def field_errors(html, name):
    block = re.search(rf'<div class="[^"]*field-{name}[^"]*">(.*?)</div>\s*</div>', html, re.S)
    return re.findall(r"<li>(.*?)</li>", block.group(1)) if block else []


def test_it_gives_every_key_a_described_field_of_a_known_kind():
    assert set(config_keys()) <= set(FIELD_INFO), "add a FieldInfo for each new key (runtime/schema.py)"
    form = runtime_config_form()()
    for name in config_keys():
        info = field_info(name)
        assert info.kind in KINDS, name
        assert str(info.label) and str(info.help_text), name
        assert name in form.fields, name


def test_it_infers_a_field_for_a_key_without_a_description(monkeypatch):
    monkeypatch.delitem(FIELD_INFO, "offer_timeout_seconds")
    monkeypatch.delitem(FIELD_INFO, "xendit_min_invoice_idr")
    monkeypatch.delitem(FIELD_INFO, "crisis_words")
    monkeypatch.delitem(FIELD_INFO, "hotline_text")
    kinds = {name: field_info(name).kind for name in set(config_keys()) - FIELD_INFO.keys()}
    assert kinds == {
        "offer_timeout_seconds": "seconds", "xendit_min_invoice_idr": "money",
        "crisis_words": "lines", "hotline_text": "text",
    }  # fmt: skip
    assert str(field_info("offer_timeout_seconds").label) == "Offer timeout seconds"
    with translation.override("en"):
        assert "10 to 3600" in str(form_field("offer_timeout_seconds").help_text)


def test_it_parses_what_staff_type():
    form_class = runtime_config_form()
    defaults = get_config().to_json()
    data = form_data(
        defaults,
        xendit_min_invoice_idr="Rp2.500",
        crisis_words="bunuh diri\n\n  pengen mati  \n",
        packages=(
            "curhat-15 | Curhat 15 menit | 15 | 15.000\ncurhat-30 | Curhat 30 menit | 30 | Rp25.000 | 75"
        ),
    )
    form = form_class(data=data, instance=RuntimeConfig(values=defaults))
    assert form.is_valid(), form.errors
    assert form.config_values["xendit_min_invoice_idr"] == 2500
    assert form.config_values["crisis_words"] == ["bunuh diri", "pengen mati"]
    assert form.config_values["packages"] == [
        {"code": "curhat-15", "name": "Curhat 15 menit", "duration_minutes": 15, "price_idr": 15000,
         "mitra_share_percent": None},
        {"code": "curhat-30", "name": "Curhat 30 menit", "duration_minutes": 30, "price_idr": 25000,
         "mitra_share_percent": 75},
    ]  # fmt: skip


def test_it_shows_each_schema_error_next_to_its_field_and_saves_nothing(internal_client, make_staff):
    call_command("seed")
    before = RuntimeConfig.objects.get()
    internal_client.force_login(make_staff("admin"))
    response = internal_client.post(
        URL,
        form_data(
            before.values,
            offer_timeout_seconds="5",
            mitra_share_percent="150",
            packages="curhat-15 | Curhat 15 menit | 15 | 500",
            preference_relax_after_seconds="60\nsatu\n180",
        ),
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert field_errors(html, "offer_timeout_seconds") == ["Harus antara 10 dan 3600."]
    assert field_errors(html, "mitra_share_percent") == ["Harus antara 0 dan 100."]
    assert field_errors(html, "packages") == [
        "Baris 1: Harga harus rupiah bulat antara 1.000 dan 10.000.000.",
    ] or field_errors(html, "packages") == ["Line 1: Harga harus rupiah bulat antara 1.000 dan 10.000.000."]
    assert field_errors(html, "preference_relax_after_seconds") in (
        ["Baris 2 bukan bilangan bulat."], ["Line 2 is not a whole number."],
    )  # fmt: skip
    after = RuntimeConfig.objects.get()
    assert (after.version, after.values) == (before.version, before.values)
    assert RuntimeConfigChange.objects.count() == 1
    assert not AuditEntry.objects.exists()


def test_it_records_each_save_in_the_history_and_rolls_back_with_one_click(internal_client, make_staff):
    call_command("seed")
    first = RuntimeConfig.objects.get()
    admin = make_staff("admin")
    internal_client.force_login(admin)
    response = internal_client.post(URL, form_data(first.values, offer_timeout_seconds="45"))
    assert response.status_code == 302
    saved = RuntimeConfig.objects.get()
    assert (saved.version, saved.values["offer_timeout_seconds"]) == (first.version + 1, 45)
    change = RuntimeConfigChange.objects.get(version=saved.version)
    assert (change.changed_by, change.diff) == (admin, {"offer_timeout_seconds": [60, 45]})

    page = internal_client.get(URL).content.decode()
    assert "Offer timeout" in page or "Batas waktu tawaran" in page
    assert f'data-version="{saved.version}"' in page
    assert f"/admin/runtime/runtimeconfig/1/rollback/{first.version}/" in page

    response = internal_client.post(f"/admin/runtime/runtimeconfig/1/rollback/{first.version}/")
    assert response.status_code == 302
    rolled = RuntimeConfig.objects.get()
    assert (rolled.version, rolled.values) == (saved.version + 1, first.values)
    assert get_config().offer_timeout_seconds == 60
    entry = RuntimeConfigChange.objects.get(version=rolled.version)
    assert (entry.restored_version, entry.changed_by, entry.diff) == (
        first.version, admin, {"offer_timeout_seconds": [45, 60]},
    )  # fmt: skip
    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor_id")) == [
        ("update_runtime_config", admin.id), ("rollback_runtime_config", admin.id),
    ]  # fmt: skip
    # Both audited with where they came from, the rollback as the save.
    [update_ip, rollback_ip] = AuditEntry.objects.order_by("id").values_list("ip_address", flat=True)
    assert update_ip and rollback_ip == update_ip


def test_it_lets_only_admins_roll_back(internal_client, make_staff):
    call_command("seed")
    first = RuntimeConfig.objects.get()
    runtime_config_update(values={**first.values, "default_capacity": 5})
    for group in ("support", "finance"):
        internal_client.force_login(make_staff(group))
        page = internal_client.get(URL)
        assert page.status_code == 200  # they may read it, without a way to change it
        html = page.content.decode()
        assert "curhat-30 | Curhat 30 menit | 30 | 25.000" in html and "bunuh diri" in html
        assert "rollback-button" not in html and 'name="offer_timeout_seconds"' not in html
        response = internal_client.post(f"/admin/runtime/runtimeconfig/1/rollback/{first.version}/")
        assert response.status_code == 403, group
    assert RuntimeConfig.objects.get().values["default_capacity"] == 5
    assert not AuditEntry.objects.exists()


def test_it_refuses_to_restore_a_version_todays_schema_refuses():
    call_command("seed")
    first = RuntimeConfig.objects.get()
    runtime_config_update(values={**first.values, "default_capacity": 5})
    RuntimeConfigChange.objects.filter(version=first.version).update(
        values={**first.values, "mitra_share_percent": 170}
    )
    with pytest.raises(ValidationError) as error:
        runtime_config_rollback(version=first.version, actor=None)
    assert error.value.message_dict == {"mitra_share_percent": ["Harus antara 0 dan 100."]}
    with pytest.raises(RuntimeConfigChange.DoesNotExist):
        runtime_config_rollback(version=999, actor=None)
    assert RuntimeConfig.objects.get().values["default_capacity"] == 5
    assert RuntimeConfigChange.objects.count() == 2
    assert not AuditEntry.objects.exists()


def test_it_refuses_a_save_over_a_version_saved_meanwhile(internal_client, make_staff):
    call_command("seed")
    first = RuntimeConfig.objects.get()
    internal_client.force_login(make_staff("admin"))
    runtime_config_update(values={**first.values, "default_capacity": 5})  # another admin, meanwhile
    response = internal_client.post(
        URL, form_data(first.values, offer_timeout_seconds="45", based_on_version=str(first.version))
    )
    assert response.status_code == 200
    assert f"Someone saved version {first.version + 1}" in response.content.decode() or (
        f"versi {first.version + 1}" in response.content.decode()
    )
    saved = RuntimeConfig.objects.get()
    assert (saved.version, saved.values["offer_timeout_seconds"], saved.values["default_capacity"]) == (
        first.version + 1, 60, 5,
    )  # fmt: skip
