"""Writing the audit log. Call inside the transaction of the change it records, so an action
and its audit row commit (or roll back) together."""

import json

from django.core.serializers.json import DjangoJSONEncoder

from halobestie.audit.models import AuditEntry


def _jsonable(value):
    return None if value is None else json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def audit_record(
    *,
    actor,
    action: str,
    obj=None,
    object_type: str = "",
    object_id="",
    before=None,
    after=None,
    request=None,
):
    """Append one audit row. `obj` (a model instance) fills object_type/object_id."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    ip = request.META.get("REMOTE_ADDR") if request is not None else None
    return AuditEntry.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        before=_jsonable(before),
        after=_jsonable(after),
        ip_address=ip,
    )
