from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import gettext_lazy as _

from halobestie.accounts.models import User


class StaffCreationForm(UserCreationForm):
    """Staff sign in with e-mail: the add form asks for it instead of a username."""

    class Meta:
        model = User
        fields = ("email",)
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
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
