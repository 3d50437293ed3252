"""Control center: sessions (timeline, force-end, refund, audited transcript), reports."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from halobestie.audit.services import audit_record
from halobestie.errors import ServiceError
from payments.models import Payment, Refund
from payments.services import refund_create
from sessions_app import lifecycle
from sessions_app.models import ChatSession, Message, Report, SessionEvent
from sessions_app.preferences import preferences_asked, preferences_out


class SessionEventInline(admin.TabularInline):
    model = SessionEvent
    fields = ("created_at", "kind", "actor", "data")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("created_at", "id")

    def has_add_permission(self, request, obj=None):
        return False


class PaymentInline(admin.TabularInline):
    """The session's payments (session and extensions) on its detail page."""

    model = Payment
    fields = ("created_at", "kind", "amount_idr", "status", "paid_at", "payment_method", "flagged_for_staff")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    fk_name = "session"
    fields = ("created_at", "amount_idr", "reason", "status")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    list_display = (
        "short_id", "flag", "status", "end_reason", "client", "mitra", "package_code", "price_idr",
        "created_at", "ends_at", "needs_refund_review", "wishes",
    )  # fmt: skip
    list_filter = ("status", "is_flagged", "needs_refund_review", "end_reason", "package_code")
    search_fields = ("id", "client__phone", "client__display_name", "mitra__display_name")
    date_hierarchy = "created_at"
    list_select_related = ("client", "mitra")
    inlines = [SessionEventInline, PaymentInline, RefundInline]
    actions = ["force_end", "refund"]
    readonly_fields = [f.name for f in ChatSession._meta.fields] + ["wishes", "transcript_link"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # sessions change only through the actions (services)

    @admin.display(description="ID")
    def short_id(self, session):
        return str(session.id)[:8]

    @admin.display(description="Krisis")
    def flag(self, session):
        if not session.is_flagged:
            return ""
        return format_html('<strong style="color:#ba2121">{}</strong>', "⚠ KRISIS")

    @admin.display(description="Preferensi (dilepas dicoret)")
    def wishes(self, session):
        """Each preference the client set; the ones the dispatcher let go are struck through."""
        shown = preferences_out(session)
        values = {
            "gender": shown["gender"],
            "language": shown["language"],
            "topics": ", ".join(shown["topics"]),
        }
        parts = [
            format_html("<s>{}: {}</s>" if kind in shown["relaxed"] else "{}: {}", kind, values[kind])
            for kind in preferences_asked(session)
        ]
        return format_html_join(" · ", "{}", ((part,) for part in parts)) if parts else "—"

    @admin.display(description="Transkrip")
    def transcript_link(self, session):
        url = reverse("admin:sessions_app_chatsession_transcript", args=[session.pk])
        return format_html('<a href="{}">Buka transkrip (diaudit)</a>', url)

    def get_urls(self):
        return [
            path(
                "<uuid:session_id>/transcript/",
                self.admin_site.admin_view(self.transcript_view),
                name="sessions_app_chatsession_transcript",
            ),
            *super().get_urls(),
        ]

    def transcript_view(self, request, session_id):
        """The chat transcript: only with `view_transcript`, and every view is audited."""
        if not request.user.has_perm("sessions_app.view_transcript"):
            raise PermissionDenied
        session = get_object_or_404(ChatSession, pk=session_id)
        audit_record(actor=request.user, action="view_transcript", obj=session, request=request)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Transkrip sesi {str(session.id)[:8]}",
            "session": session,
            "messages_list": Message.objects.filter(session=session).order_by("seq"),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/sessions_app/transcript.html", context)

    @admin.action(description="Akhiri sesi terpilih secara paksa", permissions=["force_end"])
    def force_end(self, request, queryset):
        done = 0
        for session in queryset:
            try:
                with transaction.atomic():
                    before = {"status": session.status}
                    ended = lifecycle.session_end(session_id=session.pk, actor=request.user)
                    audit_record(
                        actor=request.user, action="force_end", obj=ended, before=before,
                        after={"status": ended.status, "end_reason": ended.end_reason}, request=request,
                    )  # fmt: skip
                done += 1
            except ServiceError as error:
                self.message_user(request, f"{str(session.pk)[:8]}: {error.detail}", messages.WARNING)
        self.message_user(request, f"{done} sesi diakhiri.")

    def has_force_end_permission(self, request):
        return request.user.has_perm("sessions_app.force_end_session")

    @admin.action(description="Refund pembayaran sesi terpilih", permissions=["refund"])
    def refund(self, request, queryset):
        done = 0
        for session in queryset:
            try:
                with transaction.atomic():
                    refund = refund_create(session=session, reason="staff_decision", actor=request.user)
                    ChatSession.objects.filter(pk=session.pk).update(needs_refund_review=False)
                    audit_record(
                        actor=request.user, action="refund", obj=session,
                        after={"refund_id": refund.pk, "amount_idr": refund.amount_idr}, request=request,
                    )  # fmt: skip
                done += 1
            except ServiceError as error:
                self.message_user(request, f"{str(session.pk)[:8]}: {error.detail}", messages.WARNING)
        self.message_user(request, f"{done} refund dibuat.")

    def has_refund_permission(self, request):
        return request.user.has_perm("payments.add_refund")


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "reason", "session", "reporter", "created_at", "resolved_at")
    list_filter = ("status", "reason")
    search_fields = ("session__id", "reporter__phone", "detail")
    readonly_fields = (
        "session",
        "reporter",
        "reason",
        "detail",
        "status",
        "resolved_by",
        "resolved_at",
        "created_at",
    )
    fields = (*readonly_fields, "resolution_note")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        """Saving a resolution note resolves the report (through the service) and audits it."""
        note = form.cleaned_data.get("resolution_note", "").strip()
        if not note:
            self.message_user(request, "Tulis catatan penyelesaian.", messages.WARNING)
            return
        try:
            with transaction.atomic():
                report = lifecycle.report_resolve(report_id=obj.pk, actor=request.user, note=note)
                audit_record(
                    actor=request.user, action="resolve_report", obj=report,
                    before={"status": "open"}, after={"status": "resolved", "note": note}, request=request,
                )  # fmt: skip
        except ServiceError as error:
            self.message_user(request, error.detail, messages.WARNING)
