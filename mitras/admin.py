"""Control center: mitras. Create (account + profile), edit, deactivate/reactivate (the services
audit those themselves), and live columns from the mirror with a Postgres fallback."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from halobestie.accounts.phones import normalize_phone
from halobestie.audit.services import audit_record
from halobestie.errors import ServiceError
from mitras import schedule, services
from mitras.models import Gender, Mitra
from mitras.rest import is_resting, mitra_rest_end
from mitras.selectors import presence_of


class MitraCreateForm(forms.ModelForm):
    avatar_url = forms.URLField(label=_("Avatar URL"), required=False, assume_scheme="https")
    phone = forms.CharField(label=_("Phone number"), help_text=_("08…, 628… or +628…"))
    password = forms.CharField(label=_("Initial password"), widget=forms.PasswordInput, min_length=10)
    topics_text = forms.CharField(label=_("Topics (comma-separated)"), required=False)
    languages_text = forms.CharField(
        label=_("Languages (codes, comma-separated)"), required=False, initial="id"
    )

    class Meta:
        model = Mitra
        fields = ["display_name", "bio", "avatar_url", "gender", "capacity"]

    def clean_phone(self):
        return normalize_phone(self.cleaned_data["phone"])


class MitraChangeForm(forms.ModelForm):
    avatar_url = forms.URLField(label=_("Avatar URL"), required=False, assume_scheme="https")
    topics_text = forms.CharField(label=_("Topics (comma-separated)"), required=False)
    languages_text = forms.CharField(label=_("Languages (codes, comma-separated)"), required=False)

    class Meta:
        model = Mitra
        fields = ["display_name", "bio", "avatar_url", "gender", "capacity"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["topics_text"].initial = ", ".join(self.instance.topics)
            self.fields["languages_text"].initial = ", ".join(self.instance.languages)


def _split(text):
    return [part.strip() for part in (text or "").split(",") if part.strip()]


@admin.register(Mitra)
class MitraAdmin(admin.ModelAdmin):
    list_display = (
        "display_name", "phone", "live_presence", "load_of_capacity", "heartbeat_age", "resting",
        "sessions_in_row", "status", "rating",
    )  # fmt: skip
    list_filter = ("is_online", ("deactivated_at", admin.EmptyFieldListFilter), "gender")
    search_fields = ("display_name", "user__phone")
    list_select_related = ("user",)
    actions = ["deactivate", "reactivate", "end_rest"]
    readonly_fields = (
        "is_online", "online_since", "last_heartbeat_at", "last_assigned_at", "deactivated_at",
        "rating_count", "rating_sum", "created_at", "updated_at", "working_hours_text", "resting",
        "sessions_in_row", "last_session_ended_at",
    )  # fmt: skip

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = MitraCreateForm if obj is None else MitraChangeForm
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["phone", "password", "display_name", "bio", "avatar_url", "gender",
                                       "capacity", "topics_text", "languages_text"]})]  # fmt: skip
        return [
            (
                None,
                {
                    "fields": [
                        "display_name",
                        "bio",
                        "avatar_url",
                        "gender",
                        "capacity",
                        "topics_text",
                        "languages_text",
                    ]
                },
            ),  # fmt: skip
            (_("Status"), {"fields": list(self.readonly_fields)}),
        ]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        try:
            mitras = list(response.context_data["cl"].result_list)
            self._presence = presence_of(mitras)
        except (AttributeError, KeyError, TypeError):
            self._presence = {}
        return response

    def _live(self, mitra):
        presence = getattr(self, "_presence", {}).get(mitra.pk)
        return presence if presence is not None else presence_of([mitra])[mitra.pk]

    @admin.display(description=_("Phone number"))
    def phone(self, mitra):
        return mitra.user.phone

    @admin.display(description=_("Present"), boolean=True)
    def live_presence(self, mitra):
        return self._live(mitra).is_present

    @admin.display(description=_("Load/capacity"))
    def load_of_capacity(self, mitra):
        return f"{self._live(mitra).load}/{mitra.capacity}"

    @admin.display(description=_("Heartbeat age"))
    def heartbeat_age(self, mitra):
        last = self._live(mitra).last_heartbeat_at
        if last is None:
            return "–"
        return _("%(seconds)s s") % {"seconds": int((timezone.now() - last).total_seconds())}

    @admin.display(description=_("Resting until"))
    def resting(self, mitra):
        if not is_resting(mitra, now=timezone.now()):
            return "–"
        until = timezone.localtime(mitra.rest_until).strftime("%d-%m %H:%M")
        return f"{until} ({mitra.get_rest_reason_display() or _('resting')})"

    @admin.display(description=_("Working hours (WIB)"))
    def working_hours_text(self, mitra):
        weekly = schedule.schedule_of(mitra)
        return "; ".join(str(interval) for interval in weekly) if weekly else _("not set")

    @admin.display(description=_("Status"))
    def status(self, mitra):
        return _("deactivated") if mitra.deactivated_at else _("active")

    @admin.display(description=_("Rating"))
    def rating(self, mitra):
        return f"{mitra.rating_average} ({mitra.rating_count})" if mitra.rating_count else "–"

    def save_model(self, request, obj, form, change):
        """Through the services: creation makes the account too; edits are validated there."""
        data = form.cleaned_data
        try:
            if not change:
                created = services.mitra_create(
                    phone=data["phone"],
                    password=data["password"],
                    display_name=data["display_name"],
                    bio=data.get("bio", ""),
                    avatar_url=data.get("avatar_url", ""),
                    topics=_split(data.get("topics_text")),
                    languages=_split(data.get("languages_text")) or ["id"],
                    gender=data.get("gender") or Gender.UNSPECIFIED,
                    capacity=data.get("capacity"),
                )
                audit_record(
                    actor=request.user,
                    action="mitra_create",
                    obj=created,
                    request=request,
                    after={"display_name": created.display_name, "capacity": created.capacity},
                )
                obj.pk = created.pk
                obj.user_id = created.user_id
                return
            services.mitra_update_profile(
                mitra=obj,
                actor=request.user,
                display_name=data["display_name"],
                bio=data.get("bio", ""),
                avatar_url=data.get("avatar_url", ""),
                gender=data.get("gender"),
                capacity=data.get("capacity"),
                topics=_split(data.get("topics_text")),
                languages=_split(data.get("languages_text")),
            )
        except (ServiceError, ValidationError, IntegrityError) as error:
            message = getattr(error, "detail", None) or "; ".join(getattr(error, "messages", [str(error)]))
            self.message_user(request, _("Not saved: %(reason)s") % {"reason": message}, messages.ERROR)

    @admin.action(description=_("Deactivate the selected Besties (unavailable at once)"))
    def deactivate(self, request, queryset):
        for mitra in queryset:
            with transaction.atomic():
                services.mitra_deactivate(mitra=mitra, actor=request.user)
        self.message_user(request, _("%(count)s Bestie(s) deactivated.") % {"count": queryset.count()})

    @admin.action(description=_("Reactivate the selected Besties"))
    def reactivate(self, request, queryset):
        for mitra in queryset:
            services.mitra_reactivate(mitra=mitra, actor=request.user)
        self.message_user(request, _("%(count)s Bestie(s) reactivated.") % {"count": queryset.count()})

    @admin.action(description=_("End the rest of the selected Besties (they get offers again)"))
    def end_rest(self, request, queryset):
        for mitra in queryset:
            mitra_rest_end(mitra=mitra, actor=request.user)
        self.message_user(request, _("Rest ended for %(count)s Bestie(s).") % {"count": queryset.count()})

    def has_delete_permission(self, request, obj=None):
        return False  # mitras are deactivated, never deleted (sessions and earnings refer to them)
