import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def snapshot_current_config(apps, schema_editor):
    """The history starts with the version in force."""
    RuntimeConfig = apps.get_model("runtime", "RuntimeConfig")
    RuntimeConfigChange = apps.get_model("runtime", "RuntimeConfigChange")
    row = RuntimeConfig.objects.filter(pk=1).first()
    if row is not None and row.values:
        RuntimeConfigChange.objects.get_or_create(
            version=row.version,
            defaults={"values": row.values, "changed_by_id": row.updated_by_id, "changed_at": row.updated_at},
        )


class Migration(migrations.Migration):

    dependencies = [
        ('runtime', '0002_crisis_lexicon_upgrade'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='RuntimeConfigChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('version', models.PositiveIntegerField(unique=True, verbose_name='version')),
                ('values', models.JSONField(verbose_name='values')),
                ('diff', models.JSONField(blank=True, default=dict, verbose_name='changes')),
                ('changed_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now, verbose_name='changed at')),
                ('restored_version', models.PositiveIntegerField(blank=True, null=True, verbose_name='restores version')),
                ('changed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='changed by')),
            ],
            options={
                'verbose_name': 'runtime config change',
                'verbose_name_plural': 'runtime config changes',
                'ordering': ['-version'],
            },
        ),
        migrations.RunPython(snapshot_current_config, migrations.RunPython.noop),
    ]
