"""Control center: campaigns with their codes (single or a generated batch) and what they gave.
Finance creates and edits them; every save is audited (halobestie/audit)."""

import re

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils.translation import gettext_lazy as _

from halobestie.audit.services import audit_record
from halobestie.errors import ServiceError
from halobestie.runtime.selectors import get_config
from promotions import selectors, services
from promotions.models import Campaign, Redemption, Voucher

CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,31}$")


def _snapshot(obj):
    return {key: value for key, value in model_to_dict(obj).items() if key != "id"} if obj.pk else None


class VoucherForm(forms.ModelForm):
    class Meta:
        model = Voucher
        fields = ("code", "max_redemptions")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["code"].disabled = True  # a code in people's hands never changes

    def clean_code(self):
        code = services.normalize_code(self.cleaned_data["code"])
        if not CODE_PATTERN.match(code):
            raise forms.ValidationError(_("3–32 characters: letters, digits and hyphens."))
        return code

    def clean_max_redemptions(self):
        limit = self.cleaned_data["max_redemptions"]
        if limit is not None and self.instance.pk and limit < self.instance.redemptions_taken:
            raise forms.ValidationError(
                _("Already used %(count)s times.") % {"count": self.instance.redemptions_taken}
            )
        return limit


class VoucherInline(admin.TabularInline):
    model = Voucher
    form = VoucherForm
    fields = ("code", "max_redemptions", "redemptions_taken")
    readonly_fields = ("redemptions_taken",)
    extra = 1
    can_delete = False
    show_change_link = False


class RedemptionInline(admin.TabularInline):
    model = Redemption
    fields = (
        "reserved_at",
        "voucher",
        "client",
        "session",
        "status",
        "list_price_idr",
        "discount_idr",
        "amount_idr",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-reserved_at",)
    max_num = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("voucher", "client", "session")

    def has_add_permission(self, request, obj=None):
        return False


class CampaignForm(forms.ModelForm):
    valid_packages = forms.MultipleChoiceField(
        label=_("Valid for packages"), required=False, widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every package."),
    )  # fmt: skip
    batch_count = forms.IntegerField(
        label=_("Generate unique codes (how many)"), required=False, min_value=1, max_value=10_000,
        help_text=_("Optional: this many random single-use codes for this campaign."),
    )  # fmt: skip
    batch_prefix = forms.CharField(label=_("Unique code prefix"), required=False, max_length=12)

    class Meta:
        model = Campaign
        fields = (
            "name", "description", "discount_kind", "discount_value", "max_discount_idr", "valid_packages",
            "starts_at", "ends_at", "max_redemptions_per_client", "is_first_session_only",
            "applies_to_extensions", "is_active",
        )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["valid_packages"].choices = [
            (p.code, f"{p.name} ({p.code})") for p in get_config().packages
        ]

    def clean(self):
        data = super().clean()
        kind, value = data.get("discount_kind"), data.get("discount_value")
        if kind == "percent" and value is not None and not 1 <= value <= 100:
            self.add_error("discount_value", _("A percentage must be 1–100."))
        if kind == "fixed" and value is not None and value < 1:
            self.add_error("discount_value", _("The discount must be at least Rp 1."))
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", _("Must be after the start."))
        return data


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    list_display = (
        "name", "discount", "ends_at", "is_active", "redemption_count", "discount_given",
        "session_count", "client_count", "repeat_client_count", "reserved_count",
    )  # fmt: skip
    list_filter = ("is_active", "discount_kind", "is_first_session_only")
    search_fields = ("name", "vouchers__code")
    inlines = [VoucherInline, RedemptionInline]
    readonly_fields = ("created_by", "created_at", "updated_at")

    def get_queryset(self, request):
        return selectors.campaigns_with_stats(super().get_queryset(request))

    def has_delete_permission(self, request, obj=None):
        return False  # redemptions point at campaigns: deactivate instead

    @admin.display(description=_("Discount"))
    def discount(self, campaign):
        if campaign.discount_kind == "percent":
            cap = (
                " (%s)" % (_("max. Rp %(amount)s") % {"amount": f"{campaign.max_discount_idr:,}"})
                if campaign.max_discount_idr
                else ""
            )
            return f"{campaign.discount_value}%{cap}".replace(",", ".")
        return f"Rp {campaign.discount_value:,}".replace(",", ".")

    @admin.display(description=_("Uses"), ordering="redemption_count")
    def redemption_count(self, campaign):
        return campaign.redemption_count

    @admin.display(description=_("Discount given (Rp)"), ordering="discount_given_idr")
    def discount_given(self, campaign):
        return f"{campaign.discount_given_idr:,}".replace(",", ".")

    @admin.display(description=_("Sessions"), ordering="session_count")
    def session_count(self, campaign):
        return campaign.session_count

    @admin.display(description=_("Clients"), ordering="client_count")
    def client_count(self, campaign):
        return campaign.client_count

    @admin.display(description=_("Returning clients"), ordering="repeat_client_count")
    def repeat_client_count(self, campaign):
        return campaign.repeat_client_count

    @admin.display(description=_("Reserved"), ordering="reserved_count")
    def reserved_count(self, campaign):
        return campaign.reserved_count

    def save_model(self, request, obj, form, change):
        before = _snapshot(Campaign.objects.get(pk=obj.pk)) if change else None
        if not change:
            obj.created_by = request.user
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit_record(
                actor=request.user, action="campaign_change" if change else "campaign_create", obj=obj,
                before=before, after=_snapshot(obj), request=request,
            )  # fmt: skip

    def save_formset(self, request, form, formset, change):
        if formset.model is not Voucher:
            return super().save_formset(request, form, formset, change)
        for voucher in formset.save(commit=False):
            if not services.voucher_save(voucher=voucher, actor=request.user, request=request):
                self.message_user(
                    request,
                    _("%(code)s: limit not changed (already used more often).") % {"code": voucher.code},
                    messages.WARNING,
                )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        count = form.cleaned_data.get("batch_count")
        if count:
            try:
                codes = services.vouchers_generate(
                    campaign=form.instance, count=count, prefix=form.cleaned_data.get("batch_prefix") or "",
                    max_redemptions=1, actor=request.user, request=request,
                )  # fmt: skip
            except ServiceError as error:
                self.message_user(request, error.detail, messages.ERROR)
            else:
                self.message_user(request, _("%(count)s unique codes created.") % {"count": len(codes)})


@admin.register(Redemption)
class RedemptionAdmin(admin.ModelAdmin):
    list_display = (
        "reserved_at", "campaign", "voucher", "client", "session", "status", "list_price_idr",
        "discount_idr", "amount_idr", "release_reason",
    )  # fmt: skip
    list_filter = ("status", "campaign")
    search_fields = ("voucher__code", "session__id")
    date_hierarchy = "reserved_at"
    list_select_related = ("campaign", "voucher", "client", "session")
    readonly_fields = [f.name for f in Redemption._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
