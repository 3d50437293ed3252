from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from halobestie.accounts import staff
from halobestie.accounts.models import User


class StaffCreationForm(UserCreationForm):
    """Staff sign in with e-mail: the add form asks for it instead of a username, and for the
    one staff group (role) the account gets (limited to what the creator may give)."""

    group = forms.ModelChoiceField(label="Peran (grup)", queryset=Group.objects.none())

    class Meta:
        model = User
        fields = ("email", "display_name")
        field_classes = {}

    def save(self, commit=True):
        user = super().save(commit=False)
        user.role = "staff"
        user.is_staff = True
        if commit:
            user.save()
        return user


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = StaffCreationForm
    ordering = ("-created_at",)
    list_display = ("id", "display_name", "phone", "email", "role", "is_active", "created_at")
    list_filter = ("role", "is_active", "is_staff")
    search_fields = ("phone", "email", "display_name")
    readonly_fields = ("created_at", "updated_at", "last_login", "deleted_at")
    fieldsets = (
        (None, {"fields": ("email", "phone", "password", "role", "display_name")}),
        (_("Access"), {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        (_("Times"), {"fields": ("last_login", "created_at", "updated_at", "deleted_at")}),
    )
    add_fieldsets = (
        (
            None,
            {"classes": ("wide",), "fields": ("email", "display_name", "group", "password1", "password2")},
        ),
    )
    # Below a superuser: no superuser flag, no loose permissions, no role or phone; groups only
    # from those the admin may give (halobestie/accounts/staff.py).
    limited_fieldsets = (
        (None, {"fields": ("email", "display_name", "password")}),
        ("Akses", {"fields": ("is_active", "groups")}),
        ("Waktu", {"fields": ("last_login", "created_at", "updated_at", "deleted_at")}),
    )

    def get_fieldsets(self, request, obj=None):
        if obj is not None and not request.user.is_superuser:
            return self.limited_fieldsets
        return super().get_fieldsets(request, obj)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is None:
            form.base_fields["group"].queryset = staff.staff_assignable_groups(request.user)
        return form

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "groups":
            kwargs["queryset"] = staff.staff_assignable_groups(request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or staff.staff_can_manage(request.user, obj))

    def save_model(self, request, obj, form, change):
        """Every change of an account is audited (in save_related, once the groups are saved)."""
        request._account_before = staff.staff_snapshot(User.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        user = form.instance
        if not change:
            user.groups.set([form.cleaned_data["group"]])
        staff.staff_change_audit(
            actor=request.user, user=user, before=getattr(request, "_account_before", None), request=request
        )

    def user_change_password(self, request, id, form_url=""):
        """The admin's set-password page, audited when it sets one."""
        with transaction.atomic():
            user = self.get_object(request, id)
            before = staff.staff_snapshot(user)
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302 and user is not None:
                user.refresh_from_db()
                staff.staff_change_audit(
                    actor=request.user, user=user, before=before, request=request,
                    action="staff_password_set" if user.role == "staff" else "user_password_set",
                )  # fmt: skip
        return response
