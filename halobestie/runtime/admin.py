"""Control center: the runtime config editor (admins only), validated, audited, broadcast."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction

from halobestie.audit.services import audit_record
from halobestie.runtime.models import RuntimeConfig
from halobestie.runtime.schema import validate_values
from halobestie.runtime.services import runtime_config_update


class RuntimeConfigForm(forms.ModelForm):
    values = forms.JSONField(widget=forms.Textarea(attrs={"rows": 30, "cols": 100}))

    class Meta:
        model = RuntimeConfig
        fields = ["values"]

    def clean_values(self):
        values = self.cleaned_data["values"]
        try:
            validate_values(values)
        except ValidationError as error:
            raise ValidationError(
                [f"{field}: {'; '.join(messages)}" for field, messages in error.message_dict.items()]
            )
        return values


@admin.register(RuntimeConfig)
class RuntimeConfigAdmin(admin.ModelAdmin):
    form = RuntimeConfigForm
    list_display = ("__str__", "version", "updated_at", "updated_by")
    readonly_fields = ("version", "updated_at", "updated_by")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        """Through the service: validated, versioned, every instance drops its cache."""
        with transaction.atomic():
            before = RuntimeConfig.objects.get(pk=obj.pk).values
            row = runtime_config_update(values=form.cleaned_data["values"], actor=request.user)
            audit_record(
                actor=request.user, action="update_runtime_config", obj=row,
                before=before, after=row.values, request=request,
            )  # fmt: skip
        obj.refresh_from_db()
