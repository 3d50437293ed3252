from django.db import migrations
from django.db.models import Count


def backfill(apps, schema_editor):
    """Each mitra's load column from the sessions occupying it now (offered + active)."""
    ChatSession = apps.get_model("sessions_app", "ChatSession")
    Mitra = apps.get_model("mitras", "Mitra")
    counts = dict(
        ChatSession.objects.filter(status__in=["offered", "active"], mitra__isnull=False)
        .values_list("mitra_id")
        .annotate(n=Count("id"))
        .values_list("mitra_id", "n")
    )
    Mitra.objects.update(load=0)
    for mitra_id, n in counts.items():
        Mitra.objects.filter(pk=mitra_id).update(load=n)


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_app", "0004_realtime"),
        ("mitras", "0002_mitra_load"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
