"""Control center: payments, their raw callbacks, refunds (settle by hand, retry)."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from halobestie.audit.services import audit_record
from halobestie.errors import ServiceError
from payments import services
from payments.models import Payment, PaymentCallback, Refund


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CallbackInline(admin.TabularInline):
    model = PaymentCallback
    fk_name = "payment"
    fields = ("received_at", "kind", "status", "outcome", "outcome_detail")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("received_at", "id")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = (
        "external_id", "kind", "status", "amount_idr", "payment_method", "payment_channel",
        "flagged_for_staff", "created_at", "paid_at",
    )  # fmt: skip
    list_filter = ("status", "kind", "flagged_for_staff", "payment_method")
    search_fields = ("external_id", "invoice_id", "session__id")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Payment._meta.fields]
    inlines = [CallbackInline]


@admin.register(PaymentCallback)
class PaymentCallbackAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "kind", "reference", "status", "outcome", "outcome_detail")
    list_filter = ("kind", "outcome", "status")
    search_fields = ("reference", "gateway_id")
    date_hierarchy = "received_at"
    readonly_fields = [f.name for f in PaymentCallback._meta.fields]


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = (
        "short_id", "status", "amount_idr", "reason", "session", "is_gateway_refund", "created_by",
        "created_at", "settled_at",
    )  # fmt: skip
    list_filter = ("status", "reason", "is_gateway_refund")
    search_fields = ("id", "xendit_refund_id", "session__id", "payment__external_id")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Refund._meta.fields]
    actions = ["settle_manually", "retry"]

    @admin.display(description=_("ID"))
    def short_id(self, refund):
        return str(refund.id)[:8]

    def has_change_permission(self, request, obj=None):
        # The actions below need it; the fields stay read-only (services only).
        return request.user.has_perm("payments.change_refund")

    def _each(self, request, queryset, action, call, done_text):
        done = 0
        for refund in queryset:
            try:
                result = call(refund)
                audit_record(
                    actor=request.user, action=action, obj=refund,
                    after={"status": result.status, "refund_id": str(result.pk)}, request=request,
                )  # fmt: skip
                done += 1
            except ServiceError as error:
                self.message_user(request, f"{str(refund.pk)[:8]}: {error.detail}", messages.WARNING)
        self.message_user(request, done_text % {"count": done})

    @admin.action(description=_("Mark as refunded by hand"), permissions=["change"])
    def settle_manually(self, request, queryset):
        self._each(
            request, queryset, "refund_settle_manually",
            lambda refund: services.refund_settle_manually(refund=refund, actor=request.user),
            _("%(count)s refund(s) marked as settled."),
        )  # fmt: skip

    @admin.action(description=_("Send the refund again"), permissions=["change"])
    def retry(self, request, queryset):
        self._each(
            request, queryset, "refund_retry",
            lambda refund: services.refund_retry(refund=refund, actor=request.user),
            _("%(count)s refund(s) sent again."),
        )  # fmt: skip
