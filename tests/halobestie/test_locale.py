"""Bahasa Indonesia throughout: every model and field of our apps is labelled through the
translation machinery (English msgids, the `id` catalogue in locale/), the catalogue is complete
and current, staff see Indonesian unless they chose English, and times show seconds in WIB."""

import datetime as dt
import importlib.util
import io
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db.migrations.loader import MigrationLoader
from django.utils import formats, timezone, translation
from django.utils.functional import Promise
from rest_framework.test import APIClient

from halobestie.audit.models import AuditEntry

ROOT = Path(settings.BASE_DIR)


def _load_messages_script():
    spec = importlib.util.spec_from_file_location("messages_script", ROOT / "scripts" / "messages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def our_models():
    """The models of the apps in this repository (not Django's, DRF's or SimpleJWT's)."""
    for model in apps.get_models():
        path = Path(model._meta.app_config.path)
        if ROOT in path.parents and ".venv" not in path.parts:
            yield model


def test_it_labels_every_model_and_field_of_our_apps_through_the_catalogue():
    unlabelled = [
        f"{config.label}: AppConfig.verbose_name"
        for config in {model._meta.app_config for model in our_models()}
        if not isinstance(config.verbose_name, Promise)
    ]
    for model in our_models():
        name = model._meta.label
        for option in ("verbose_name", "verbose_name_plural"):
            if not isinstance(model._meta.original_attrs.get(option), Promise):
                unlabelled.append(f"{name}: Meta.{option}")
        for field in model._meta.get_fields():
            if field.auto_created and not field.concrete:
                continue  # a reverse relation: labelled by its forward field
            if field.auto_created and field.primary_key:
                continue  # Django's implicit `id`
            # _verbose_name is what the field was given; None means Django made one from the name.
            if not isinstance(field._verbose_name, Promise):
                unlabelled.append(f"{name}.{field.name}: verbose_name={field._verbose_name!r}")
            if field.choices:
                unlabelled += [
                    f"{name}.{field.name}: choice {value!r}"
                    for value, label in field.flatchoices
                    if not isinstance(label, Promise)
                ]
    assert unlabelled == []


def test_it_covers_the_apps_the_brief_names():
    assert {model._meta.app_label for model in our_models()} >= {
        "accounts", "audit", "runtime", "legacy", "mitras", "sessions_app", "payments", "promotions",
    }  # fmt: skip


def test_it_shows_the_labels_the_issue_found_in_english_in_indonesian():
    from sessions_app.models import ChatSession

    field = ChatSession._meta.get_field
    with translation.override("id"):
        labels = [
            str(field(name).verbose_name) for name in ("price_idr", "allow_any_mitra", "needs_refund_review")
        ]
        assert labels == ["harga (Rp)", "boleh Bestie lain", "perlu ditinjau untuk refund"]
        assert str(ChatSession._meta.verbose_name) == "sesi chat"
    with translation.override("en"):
        assert str(field("allow_any_mitra").verbose_name) == "allow any Bestie"


def test_it_keeps_the_id_catalogue_complete_and_current():
    """Nothing `make messages` would add or drop, nothing untranslated or fuzzy, no lost
    placeholder, and the committed .mo compiled from the .po."""
    assert _load_messages_script().problems() == []


def test_it_reads_back_the_catalogue_it_writes():
    messages = _load_messages_script()
    entries = messages.read_po()
    assert messages.render_po(entries) == messages.PO_PATH.read_text(encoding="utf-8")
    assert entries[(None, "needs refund review")].msgstr == ["perlu ditinjau untuk refund"]


def test_it_finds_texts_in_python_and_templates(tmp_path):
    messages = _load_messages_script()
    source = tmp_path / "module.py"
    source.write_text(
        'from django.utils.translation import gettext_lazy as _, pgettext, ngettext\n'
        'A = _("plain")\nB = pgettext("menu", "open")\nC = ngettext("%(n)s day", "%(n)s days", 2)\n'
        'D = _(f"{A} never")\nE = _(A)\n'
    )  # fmt: skip
    template = tmp_path / "page.html"
    template.write_text(
        '{% load i18n %}<p>{% translate "Hello" %}</p>'
        "{% blocktranslate %}Hi {{ name }}{% endblocktranslate %}"
    )
    found = {
        (entry.msgctxt, entry.msgid, entry.msgid_plural)
        for entry in [
            *messages._python_messages(source, "m.py"),
            *messages._template_messages(template, "t.html"),
        ]
    }
    assert found == {
        (None, "plain", None), ("menu", "open", None), (None, "%(n)s day", "%(n)s days"),
        (None, "Hello", None), (None, "Hi %(name)s", None),
    }  # fmt: skip
    assert list(messages._fstring_problems(source, "m.py")) == [
        "m.py:5: an f-string in _() is never translated"
    ]


def test_it_shows_the_control_center_in_indonesian_unless_english_is_chosen(internal_client, make_staff):
    internal_client.force_login(make_staff("admin"))
    english_browser = {"accept-language": "en-US,en;q=0.9"}

    sessions = internal_client.get("/admin/sessions_app/chatsession/", headers=english_browser)
    new_mitra = internal_client.get("/admin/mitras/mitra/add/", headers=english_browser).content.decode()

    # A browser in English is no choice: still Indonesian.
    assert sessions.headers["Content-Language"] == "id"
    assert "Berdasarkan perlu ditinjau untuk refund" in sessions.content.decode()
    assert all(label in new_mitra for label in ("Nomor HP", "Kata sandi awal", "Nama Bestie", "Kapasitas"))
    assert 'name="language" value="en"' in new_mitra

    # The switch in the header is the choice (Django's set_language: a cookie).
    switched = internal_client.post("/i18n/setlang/", {"language": "en", "next": "/admin/mitras/mitra/add/"})
    assert (switched.status_code, switched.headers["Location"]) == (302, "/admin/mitras/mitra/add/")
    sessions_en = internal_client.get("/admin/sessions_app/chatsession/").content.decode()
    new_mitra_en = internal_client.get("/admin/mitras/mitra/add/").content.decode()
    assert "By needs refund review" in sessions_en
    assert all(
        label in new_mitra_en for label in ("Phone number", "Initial password", "Bestie name", "Capacity")
    )

    internal_client.post("/i18n/setlang/", {"language": "id", "next": "/admin/"})
    assert "Nomor HP" in internal_client.get("/admin/mitras/mitra/add/").content.decode()


def test_it_shows_times_with_seconds_in_jakarta(internal_client, make_staff):
    entry = AuditEntry.objects.create(action="locale_check", object_type="test", object_id="1")
    stored = dt.datetime(2026, 11, 30, 1, 15, 42, tzinfo=dt.UTC)
    AuditEntry.objects.filter(pk=entry.pk).update(created_at=stored)
    internal_client.force_login(make_staff("admin"))

    page = internal_client.get("/admin/audit/auditentry/").content.decode()

    assert "30 Nov 2026, 08.15.42 WIB" in page
    with translation.override("en"):
        assert (
            formats.date_format(timezone.localtime(stored), "DATETIME_FORMAT")
            == "Nov. 30, 2026, 08:15:42 WIB"
        )
    assert AuditEntry.objects.get(pk=entry.pk).created_at == stored  # stored as given, in UTC


def test_it_answers_the_api_in_indonesian_whatever_the_phone_language():
    client = APIClient()
    plain = client.get("/api/v1/me")
    english = client.get("/api/v1/me", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert plain.status_code == english.status_code == 401
    assert plain.json() == english.json()
    assert english.headers["Content-Language"] == "id"


def test_it_changes_no_table_in_the_label_migrations():
    """The *_verbose_names_id migrations only change labels and choices: no SQL at all."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    label_migrations = sorted(key for key in loader.disk_migrations if key[1].endswith("_verbose_names_id"))
    assert label_migrations, "no *_verbose_names_id migration found"
    for app, name in label_migrations:
        output = io.StringIO()
        call_command("sqlmigrate", app, name, stdout=output)
        statements = [
            line
            for line in output.getvalue().splitlines()
            if line.strip() and not line.startswith("--") and line not in ("BEGIN;", "COMMIT;")
        ]
        assert statements == [], f"{app}.{name}"
