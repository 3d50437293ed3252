"""Writing the runtime config."""

from django.db import transaction

from halobestie.runtime import broadcast
from halobestie.runtime.models import RuntimeConfig
from halobestie.runtime.schema import validate_values
from halobestie.runtime.selectors import invalidate_local


def runtime_config_update(*, values: dict, actor=None) -> RuntimeConfig:
    """Validate and save the whole config; every instance drops its cache after commit.

    Raises django's ValidationError (per field) and changes nothing on bad values.
    """
    validated = validate_values(values)
    with transaction.atomic():
        row, _ = RuntimeConfig.objects.select_for_update().get_or_create(pk=1)
        before = row.values
        row.values = validated.to_json()
        row.version = row.version + 1 if before else row.version
        row.updated_by = actor
        row.save()
        transaction.on_commit(lambda: _after_save(row.version))
    return row


def runtime_config_ensure_defaults() -> RuntimeConfig:
    """Create the row with default values if it is missing; keep what staff saved otherwise.
    A stored config missing newer keys is filled in with their defaults."""
    with transaction.atomic():
        row, created = RuntimeConfig.objects.select_for_update().get_or_create(pk=1)
        merged = validate_values(row.values or {}).to_json()
        if created or merged != row.values:
            row.values = merged
            row.save()
            transaction.on_commit(lambda: _after_save(row.version))
    return row


def _after_save(version):
    invalidate_local()
    broadcast.publish_invalidation(version)
