"""Control center: the runtime config editor (admins only): one typed field per key, errors next
to their field, the change history with a one-click rollback; validated, audited, broadcast."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from halobestie.audit.services import audit_record
from halobestie.runtime.forms import (
    current_values,
    describe_change,
    display_value,
    fieldsets,
    runtime_config_form,
)
from halobestie.runtime.models import RuntimeConfig, RuntimeConfigChange
from halobestie.runtime.schema import config_keys, field_info
from halobestie.runtime.services import runtime_config_rollback, runtime_config_update

HISTORY_LENGTH = 30


@admin.register(RuntimeConfig)
class RuntimeConfigAdmin(admin.ModelAdmin):
    form = runtime_config_form()
    change_form_template = "admin/runtime/runtimeconfig/change_form.html"
    list_display = ("__str__", "version", "updated_at", "updated_by")
    readonly_fields = ("version", "updated_at", "updated_by")

    def __getattr__(self, name):
        # Staff who may only view see each key read-only: the admin looks its value up here.
        if name in config_keys():

            def value(obj):
                return display_value(name, current_values(obj).get(name))

            value.short_description = field_info(name).label
            return value
        raise AttributeError(name)

    def get_fieldsets(self, request, obj=None):
        return fieldsets(extra=self.readonly_fields, editable=self.has_change_permission(request, obj))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        rollback = self.admin_site.admin_view(require_POST(self.rollback_view))
        return [
            path("<path:object_id>/rollback/<int:version>/", rollback, name="runtime_runtimeconfig_rollback"),
            *super().get_urls(),
        ]

    def save_model(self, request, obj, form, change):
        """Through the service: validated, versioned, every instance drops its cache."""
        with transaction.atomic():
            before = RuntimeConfig.objects.get(pk=obj.pk).values
            row = runtime_config_update(values=form.config_values, actor=request.user)
            audit_record(
                actor=request.user, action="update_runtime_config", obj=row,
                before=before, after=row.values, request=request,
            )  # fmt: skip
        obj.refresh_from_db()

    def rollback_view(self, request, object_id, version):
        if not self.has_change_permission(request):
            raise PermissionDenied
        try:
            row = runtime_config_rollback(version=version, actor=request.user, request=request)
        except RuntimeConfigChange.DoesNotExist:
            self.message_user(
                request, _("There is no version %(version)s.") % {"version": version}, messages.ERROR
            )
        except ValidationError as error:
            reasons = "; ".join(error.messages)
            self.message_user(
                request,
                _("Version %(version)s was not restored: %(reasons)s")
                % {"version": version, "reasons": reasons},
                messages.ERROR,
            )
        else:
            self.message_user(
                request,
                _("Version %(version)s restored as version %(new)s; every server uses it now.")
                % {"version": version, "new": row.version},
                messages.SUCCESS,
            )
        return redirect(reverse("admin:runtime_runtimeconfig_change", args=[object_id]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "config_history": history_rows(),
            "can_roll_back": self.has_change_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)


def history_rows():
    """The latest versions, newest first, each with who, when (Asia/Jakarta, seconds) and its
    changes as staff read them."""
    changes = RuntimeConfigChange.objects.select_related("changed_by")[:HISTORY_LENGTH]
    current = RuntimeConfig.objects.filter(pk=1).values_list("version", flat=True).first()
    return [
        {
            "version": change.version,
            "changed_at": timezone.localtime(change.changed_at).strftime("%d-%m-%Y %H:%M:%S"),
            "changed_by": str(change.changed_by) if change.changed_by else _("system"),
            "restored_version": change.restored_version,
            "is_current": change.version == current,
            "changes": [
                describe_change(name, before, after) for name, (before, after) in change.diff.items()
            ],
        }
        for change in changes
    ]
