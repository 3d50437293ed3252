"""Writing the runtime config: every save is a new version with its history entry; a rollback is
a save of an earlier version's values. Every instance drops its cache after commit."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from halobestie.audit.services import audit_record
from halobestie.runtime import broadcast
from halobestie.runtime.models import RuntimeConfig, RuntimeConfigChange
from halobestie.runtime.schema import validate_values
from halobestie.runtime.selectors import invalidate_local


def runtime_config_update(*, values: dict, actor=None) -> RuntimeConfig:
    """Validate and save the whole config as a new version with its history entry.

    Raises django's ValidationError (per field) and changes nothing on bad values.
    """
    validated = validate_values(values)
    with transaction.atomic():
        return _save(validated.to_json(), actor=actor)


def runtime_config_rollback(*, version: int, actor, request=None) -> RuntimeConfig:
    """Save the values of the earlier `version` again, as a new version: validated against
    today's schema (a version the schema no longer accepts is refused with the reasons),
    recorded in the history and the audit log, broadcast to every instance like any save.

    Raises RuntimeConfigChange.DoesNotExist for an unknown version, ValidationError (per field)
    for values no longer valid; changes nothing then.
    """
    with transaction.atomic():
        target = RuntimeConfigChange.objects.get(version=version)
        validated = validate_values(target.values)
        current = RuntimeConfig.objects.select_for_update().get(pk=1)
        if version == current.version:
            raise ValidationError(_("This version is already in force."))
        before = current.values
        row = _save(validated.to_json(), actor=actor, restored_version=version)
        audit_record(
            actor=actor, action="rollback_runtime_config", obj=row,
            before=before, after={"restored_version": version, "values": row.values}, request=request,
        )  # fmt: skip
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
            # The current version's history entry holds what is in force (the filled-in keys too).
            RuntimeConfigChange.objects.update_or_create(version=row.version, defaults={"values": merged})
            transaction.on_commit(lambda: _after_save(row.version))
    return row


def _save(values, *, actor, restored_version=None):
    """Write `values` (validated) as the next version. Call inside a transaction."""
    row, _ = RuntimeConfig.objects.select_for_update().get_or_create(pk=1)
    before = row.values
    row.values = values
    row.version = row.version + 1 if before else row.version
    row.updated_by = actor if getattr(actor, "pk", None) else None
    row.save()
    RuntimeConfigChange.objects.update_or_create(
        version=row.version,
        defaults={
            "values": values, "diff": config_diff(before or {}, values), "changed_by": row.updated_by,
            "changed_at": row.updated_at, "restored_version": restored_version,
        },
    )  # fmt: skip
    transaction.on_commit(lambda: _after_save(row.version))
    return row


def config_diff(before: dict, after: dict) -> dict:
    """{key: [before, after]} for every key whose value differs (None where a key is missing)."""
    return {
        key: [before.get(key), after.get(key)]
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def _after_save(version):
    invalidate_local()
    broadcast.publish_invalidation(version)
