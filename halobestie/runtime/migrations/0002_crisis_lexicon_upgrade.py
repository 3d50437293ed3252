"""A stored runtime config that still has the first 14-phrase crisis list (the old default, never
edited by staff) gets the new default lexicon; a list staff changed is left alone (issue 20). The
new keys (crisis_exclusions, mitra_alert_words, crisis_free_minutes, …) are filled in with their
defaults by `manage.py seed` as for every new key."""

from django.db import migrations

from halobestie.runtime.crisis_lexicon import CRISIS_WORDS

OLD_DEFAULT = [
    "bunuh diri", "ingin mati", "pengen mati", "mau mati", "akhiri hidup", "mengakhiri hidup",
    "menyakiti diri", "melukai diri", "self harm", "self-harm", "suicide", "kill myself",
    "end my life", "want to die",
]  # fmt: skip


def upgrade(apps, schema_editor):
    RuntimeConfig = apps.get_model("runtime", "RuntimeConfig")
    for row in RuntimeConfig.objects.all():
        values = dict(row.values or {})
        if values.get("crisis_words") == OLD_DEFAULT:
            values["crisis_words"] = list(CRISIS_WORDS)
            row.values = values
            row.version += 1
            row.save(update_fields=["values", "version"])


class Migration(migrations.Migration):
    dependencies = [("runtime", "0001_initial")]

    operations = [migrations.RunPython(upgrade, migrations.RunPython.noop)]
