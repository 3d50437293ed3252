"""Control center: the day's bookings per Bestie; support moves or cancels one (audited)."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils import timezone

from halobestie.audit.services import audit_record
from halobestie.errors import ServiceError
from sessions_app import booking_effects, bookings
from sessions_app.booking_slots import JAKARTA
from sessions_app.models import Booking


class BookingStaffForm(forms.ModelForm):
    """Moving (a new start) or cancelling (a full refund) runs the booking services from
    `clean`, so a refusal (time taken, already started) shows on the form; the admin then saves
    nothing more (BookingAdmin.save_model)."""

    cancel = forms.BooleanField(required=False, label="Batalkan pemesanan (dana kembali penuh ke klien)")
    note = forms.CharField(required=False, max_length=500, label="Catatan (untuk audit)")

    class Meta:
        model = Booking
        fields = ("starts_at",)
        labels = {"starts_at": "Mulai (pindahkan ke)"}

    request = None  # set by BookingAdmin.get_form

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        booking = self.instance
        before = {"starts_at": booking.starts_at.isoformat(), "state": booking_effects.booking_state(booking)}
        try:
            if data.get("cancel"):
                done = bookings.booking_cancel_by_staff(
                    actor=self.request.user, booking_id=booking.pk, note=data.get("note", "")
                )
                action = "booking.cancel"
            elif "starts_at" in self.changed_data:
                done = bookings.booking_move_by_staff(
                    actor=self.request.user, booking_id=booking.pk, starts_at=data["starts_at"]
                )
                action = "booking.move"
            else:
                return data
        except ServiceError as error:
            raise ValidationError(str(error.detail)) from None
        audit_record(
            actor=self.request.user,
            action=action,
            obj=done,
            request=self.request,
            before=before,
            after={
                "starts_at": done.starts_at.isoformat(),
                "state": booking_effects.booking_state(done),
                "note": data.get("note", ""),
            },
        )
        return data


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    form = BookingStaffForm
    list_display = ("starts_local", "mitra", "client_name", "package", "state")
    list_filter = ("mitra", "session__status")
    date_hierarchy = "starts_at"
    ordering = ("mitra", "starts_at")
    search_fields = ("mitra__display_name", "=id")
    list_select_related = ("session", "mitra", "client")
    readonly_fields = (
        "mitra",
        "client_name",
        "package",
        "state",
        "ends_local",
        "hold_expires_at",
        "reminders_sent",
        "mitra_absent_at",
        "session",
    )

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.request = request
        return form

    def has_add_permission(self, request):
        return False  # clients book through the app (slots, payment)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        pass  # the services already did the change in the form's clean

    def save_related(self, request, form, formsets, change):
        pass

    @admin.display(description="Mulai (WIB)", ordering="starts_at")
    def starts_local(self, booking):
        return timezone.localtime(booking.starts_at, timezone=JAKARTA).strftime("%d/%m/%Y %H:%M")

    @admin.display(description="Selesai (WIB)")
    def ends_local(self, booking):
        return timezone.localtime(booking.ends_at, timezone=JAKARTA).strftime("%d/%m/%Y %H:%M")

    @admin.display(description="Klien")
    def client_name(self, booking):
        return booking.client.display_name or "Klien"

    @admin.display(description="Paket")
    def package(self, booking):
        return booking.session.package_code

    @admin.display(description="Keadaan")
    def state(self, booking):
        return {
            "held": "Ditahan (menunggu pembayaran)",
            "confirmed": "Terkonfirmasi",
            "started": "Berlangsung",
            "mitra_absent": "Bestie tidak hadir",
            "finding_bestie": "Mencari Bestie lain",
            "completed": "Selesai",
            "cancelled": "Dibatalkan",
        }[booking_effects.booking_state(booking)]
