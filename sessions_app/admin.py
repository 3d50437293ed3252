"""Control center: sessions (timeline, force-end, partial refunds, audited transcript), reports,
ratings, the earnings ledger and payouts."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Sum
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from halobestie.audit.services import audit_record
from halobestie.errors import ServiceError
from payments.models import Payment, Refund
from sessions_app import handoff, lifecycle, payouts, settlement
from sessions_app.models import ChatSession, EarningsEntry, Message, PayoutBatch, Rating, Report
from sessions_app.preferences import preferences_asked, preferences_out
from sessions_app.selectors import session_money
from sessions_app.timeline import session_timeline


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
        "short_id", "flag", "needs_staff_attention", "status", "end_reason", "client", "mitra",
        "package_code", "price_idr",
        "created_at", "ends_at", "needs_refund_review", "wishes",
    )  # fmt: skip
    list_filter = (
        "status", "is_flagged", "needs_staff_attention", "needs_refund_review", "end_reason", "package_code",
    )  # fmt: skip
    search_fields = ("id", "client__phone", "client__display_name", "mitra__display_name")
    date_hierarchy = "created_at"
    list_select_related = ("client", "mitra")
    inlines = [PaymentInline, RefundInline]
    actions = ["force_end", "force_end_mitra_fault", "force_end_client_fault"]
    readonly_fields = ["money", "refund_link", "transcript_link", "handoff_link", "wishes", "timeline"] + [
        f.name for f in ChatSession._meta.fields
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # sessions change only through the actions (services)

    @admin.display(description=_("ID"))
    def short_id(self, session):
        return str(session.id)[:8]

    @admin.display(description=_("Crisis"))
    def flag(self, session):
        if not session.is_flagged:
            return ""
        return format_html('<strong style="color:#ba2121">{}</strong>', _("⚠ CRISIS"))

    @admin.display(description=_("Session money"))
    def money(self, session):
        money = session_money(session=session)
        text = _(
            "paid Rp%(paid)s · refunded Rp%(refunded)s · net Rp%(net)s · Bestie Rp%(mitra)s · "
            "platform Rp%(platform)s"
        ) % {
            "paid": money.paid_idr,
            "refunded": money.refunded_idr,
            "net": money.client_net_idr,
            "mitra": money.mitra_idr,
            "platform": money.platform_idr,
        }
        return text if money.is_settled else f"{text} ({_('not settled yet')})"

    @admin.display(description=_("Refund"))
    def refund_link(self, session):
        url = reverse("admin:sessions_app_chatsession_refund", args=[session.pk])
        return format_html('<a href="{}" id="refund-link">{}</a>', url, _("Partial / full refund"))

    @admin.display(description=_("Preferences (struck through: let go)"))
    def wishes(self, session):
        """Each preference the client set, marked held or relaxed (struck through) by the
        dispatcher; and a requested Bestie, with "hanya dia" when the client allowed no other."""
        shown = preferences_out(session)
        values = {
            "gender": shown["gender"],
            "language": shown["language"],
            "topics": ", ".join(shown["topics"]),
        }
        parts = [
            format_html("<s>{}: {}</s> (dilepas)", kind, values[kind])
            if kind in shown["relaxed"]
            else format_html("<strong>{}: {}</strong> (dipegang)", kind, values[kind])
            for kind in preferences_asked(session)
        ]
        if session.requested_mitra_id:
            only = "" if session.allow_any_mitra else ", hanya dia"
            parts.insert(0, format_html("Bestie diminta: #{}{}", session.requested_mitra_id, only))
        return format_html_join(" · ", "{}", ((part,) for part in parts)) if parts else "—"

    @admin.display(description=_("Timeline"))
    def timeline(self, session):
        """The events as sentences (sessions_app/timeline.py), to the second, Asia/Jakarta."""
        rows = [
            (
                entry.kind,
                entry.time,
                entry.sentence,
                entry.actor,
                format_html('<a href="{}">{}</a>', entry.link.url, entry.link.text) if entry.link else "",
            )
            for entry in session_timeline(session=session)
        ]
        if not rows:
            return "–"
        return format_html(
            '<table id="session-timeline"><thead><tr><th>Waktu</th><th>Peristiwa</th><th>Oleh</th>'
            "<th>Terkait</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "", '<tr class="timeline-{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>', rows
            ),
        )

    @admin.display(description=_("Transcript"))
    def transcript_link(self, session):
        url = reverse("admin:sessions_app_chatsession_transcript", args=[session.pk])
        return format_html('<a href="{}">{}</a>', url, _("Open the transcript (audited)"))

    @admin.display(description=_("Crisis: respond / staff message"))
    def handoff_link(self, session):
        url = reverse("admin:sessions_app_chatsession_handoff", args=[session.pk])
        return format_html('<a href="{}">{}</a>', url, _("Open the handling page (audited)"))

    def get_urls(self):
        return [
            path(
                "alerts.json",
                self.admin_site.admin_view(self.alerts_view),
                name="sessions_app_chatsession_alerts",
            ),
            path(
                "<uuid:session_id>/handoff/",
                self.admin_site.admin_view(self.handoff_view),
                name="sessions_app_chatsession_handoff",
            ),
            path(
                "<uuid:session_id>/transcript/",
                self.admin_site.admin_view(self.transcript_view),
                name="sessions_app_chatsession_transcript",
            ),
            path(
                "<uuid:session_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="sessions_app_chatsession_refund",
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
            "title": _("Transcript of session %(id)s") % {"id": str(session.id)[:8]},
            "session": session,
            "messages_list": Message.objects.filter(session=session).order_by("seq"),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/sessions_app/transcript.html", context)

    def alerts_view(self, request):
        """The live crisis alert every control-center page polls (templates/admin/base_site.html)."""
        if not request.user.has_perm("sessions_app.view_chatsession"):
            raise PermissionDenied
        sessions = handoff.attention_list()
        for item in sessions:
            item["handoff_url"] = reverse("admin:sessions_app_chatsession_handoff", args=[item["session_id"]])
        return JsonResponse({"sessions": sessions})

    def handoff_view(self, request, session_id):
        """Acknowledge a crisis flag (with a note) or write to both sides as Tim HaloBestie;
        both through sessions_app/handoff.py, both audited there."""
        if not request.user.has_perm("sessions_app.handle_crisis"):
            raise PermissionDenied
        session = get_object_or_404(ChatSession, pk=session_id)
        if request.method == "POST":
            try:
                if request.POST.get("action") == "acknowledge":
                    handoff.attention_acknowledge(
                        session_id=session.pk, actor=request.user, note=request.POST.get("note", ""),
                        request=request,
                    )  # fmt: skip
                    self.message_user(request, _("Session marked as handled."))
                elif request.POST.get("action") == "message":
                    handoff.staff_message_post(
                        session_id=session.pk, actor=request.user, text=request.POST.get("text", ""),
                        request=request,
                    )  # fmt: skip
                    self.message_user(request, _("Tim HaloBestie message sent."))
            except ServiceError as error:
                self.message_user(request, error.detail, messages.WARNING)
            return redirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Handling session %(id)s") % {"id": str(session.id)[:8]},
            "session": session,
            "events": session_timeline(session=session),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/sessions_app/handoff.html", context)

    def _force_end(self, request, queryset, fault):
        done = 0
        for session in queryset:
            try:
                with transaction.atomic():
                    before = {"status": session.status}
                    ended = lifecycle.session_end(session_id=session.pk, actor=request.user, fault=fault)
                    audit_record(
                        actor=request.user, action="force_end", obj=ended, before=before,
                        after={"status": ended.status, "end_reason": ended.end_reason, "fault": fault},
                        request=request,
                    )  # fmt: skip
                done += 1
            except ServiceError as error:
                self.message_user(request, f"{str(session.pk)[:8]}: {error.detail}", messages.WARNING)
        self.message_user(request, _("%(count)s session(s) ended.") % {"count": done})

    @admin.action(description=_("Force-end the selected sessions"), permissions=["force_end"])
    def force_end(self, request, queryset):
        self._force_end(request, queryset, settlement.FAULT_NONE)

    @admin.action(
        description=_("Force-end: the Bestie's fault (unused minutes refunded)"), permissions=["force_end"]
    )
    def force_end_mitra_fault(self, request, queryset):
        self._force_end(request, queryset, settlement.FAULT_MITRA)

    @admin.action(description=_("Force-end: the client's fault (report upheld)"), permissions=["force_end"])
    def force_end_client_fault(self, request, queryset):
        self._force_end(request, queryset, settlement.FAULT_CLIENT)

    def has_force_end_permission(self, request):
        return request.user.has_perm("sessions_app.force_end_session")

    def refund_view(self, request, session_id):
        """Finance: give back part or all of what the client paid (≤ paid − already refunded),
        with a reason; through the refund service, the ledger books the reversal; audited."""
        if not request.user.has_perm("payments.add_refund"):
            raise PermissionDenied
        session = get_object_or_404(ChatSession, pk=session_id)
        money = session_money(session=session)
        form = StaffRefundForm(request.POST or None, initial={"amount_idr": money.client_net_idr})
        if request.method == "POST" and form.is_valid():
            try:
                refund = settlement.session_refund_by_staff(
                    session_id=session.pk,
                    actor=request.user,
                    amount_idr=form.cleaned_data["amount_idr"],
                    note=form.cleaned_data["note"],
                    request=request,
                )
            except ServiceError as error:
                form.add_error(None, error.detail)
                for field, errors in (error.fields or {}).items():
                    if field in form.fields:
                        form.add_error(field, errors)
            else:
                self.message_user(request, _("Refund Rp%(amount)s created.") % {"amount": refund.amount_idr})
                return HttpResponseRedirect(
                    reverse("admin:sessions_app_chatsession_change", args=[session.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Refund for session %(id)s") % {"id": str(session.id)[:8]},
            "session": session,
            "money": money,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/sessions_app/refund.html", context)


class StaffRefundForm(forms.Form):
    amount_idr = forms.IntegerField(label=_("Amount (Rp)"), min_value=1)
    note = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(EarningsEntry)
class EarningsEntryAdmin(ReadOnlyAdmin):
    """The ledger, append-only: read here, written only by sessions_app/settlement.py."""

    list_display = (
        "created_at", "period", "mitra", "session_short", "kind", "amount_idr", "platform_idr",
        "share_percent", "served_minutes", "paid_minutes", "reason",
    )  # fmt: skip
    list_filter = ("kind", "period")
    search_fields = ("session__id", "mitra__display_name", "mitra__user__phone")
    date_hierarchy = "created_at"
    list_select_related = ("mitra",)
    readonly_fields = [f.name for f in EarningsEntry._meta.fields]

    @admin.display(description=_("Session"))
    def session_short(self, entry):
        return str(entry.session_id)[:8]


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "mitra", "score", "comment", "session_short")
    list_filter = ("score",)
    search_fields = ("mitra__display_name", "session__id")
    date_hierarchy = "created_at"
    list_select_related = ("mitra",)
    readonly_fields = [f.name for f in Rating._meta.fields]

    @admin.display(description=_("Session"))
    def session_short(self, rating):
        return str(rating.session_id)[:8]


class PayoutRecordForm(forms.Form):
    period = forms.CharField(label=_("Period (YYYY-MM)"), max_length=7)
    reference = forms.CharField(label=_("Transfer reference"), max_length=100)


@admin.register(PayoutBatch)
class PayoutBatchAdmin(ReadOnlyAdmin):
    """Payout periods: the CSV per period (one row per Bestie) and the record that it was paid,
    which locks the period (sessions_app/payouts.py)."""

    list_display = (
        "period", "total_idr", "entries_idr", "reversals_idr", "mitra_count", "reference", "paid_by",
        "paid_at",
    )  # fmt: skip
    readonly_fields = [f.name for f in PayoutBatch._meta.fields]
    change_list_template = "admin/sessions_app/payoutbatch/change_list.html"

    def get_urls(self):
        return [
            path(
                "csv/<str:period>/", self.admin_site.admin_view(self.csv_view), name="sessions_app_payout_csv"
            ),
            path("record/", self.admin_site.admin_view(self.record_view), name="sessions_app_payout_record"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        paid = set(PayoutBatch.objects.values_list("period", flat=True))
        periods = [
            {"period": f"{row['period']:%Y-%m}", "total_idr": row["total"], "is_paid": row["period"] in paid}
            for row in EarningsEntry.objects.values("period")
            .annotate(total=Sum("amount_idr"))
            .order_by("-period")
        ]
        extra = {"periods": periods, "can_record": request.user.has_perm("sessions_app.add_payoutbatch")}
        return super().changelist_view(request, extra_context={**(extra_context or {}), **extra})

    def csv_view(self, request, period):
        if not request.user.has_perm("sessions_app.view_payoutbatch"):
            raise PermissionDenied
        try:
            month = payouts.parse_period(period)
        except ServiceError:
            return HttpResponse(_("The period must be YYYY-MM."), status=400, content_type="text/plain")
        audit_record(actor=request.user, action="payout_csv_export", object_type="payout", object_id=period,
                     request=request)  # fmt: skip
        response = HttpResponse(payouts.payout_csv(period=month), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="payout-{month:%Y-%m}.csv"'
        return response

    def record_view(self, request):
        if not request.user.has_perm("sessions_app.add_payoutbatch"):
            raise PermissionDenied
        form = PayoutRecordForm(request.POST or None, initial={"period": request.GET.get("period", "")})
        if request.method == "POST" and form.is_valid():
            try:
                batch = payouts.payout_batch_record(
                    period=payouts.parse_period(form.cleaned_data["period"]),
                    actor=request.user,
                    reference=form.cleaned_data["reference"],
                    request=request,
                )
            except ServiceError as error:
                form.add_error(None, error.detail)
            else:
                self.message_user(
                    request,
                    _("Payout %(period)s Rp%(total)s recorded as paid.")
                    % {"period": f"{batch.period:%Y-%m}", "total": batch.total_idr},
                )
                return HttpResponseRedirect(reverse("admin:sessions_app_payoutbatch_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Record a paid payout"),
            "form": form,
            "now": timezone.now(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/sessions_app/payout_record.html", context)


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
            self.message_user(request, _("Write a resolution note."), messages.WARNING)
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
