"""The control center: Django's admin with a live dashboard, served only by the internal app."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _


class ControlCenterSite(admin.AdminSite):
    site_header = _("HaloBestie Control Center")
    site_title = _("HaloBestie CC")
    index_title = _("Control center")
    index_template = "admin/control_center/index.html"

    def get_urls(self):
        return [
            path("dashboard/", self.admin_view(self.dashboard_view), name="dashboard"),
            path("dashboard.json", self.admin_view(self.dashboard_data), name="dashboard-data"),
            path(
                "staff/mitra/<int:mitra_id>/password-reset/",
                self.admin_view(self.mitra_password_reset_view),
                name="mitra-password-reset",
            ),
            *super().get_urls(),
        ]

    def dashboard_view(self, request):
        context = {**self.each_context(request), "title": _("Live dashboard")}
        return TemplateResponse(request, "admin/control_center/dashboard.html", context)

    def dashboard_data(self, request):
        # The admin site is loaded while the app registry is being built (default_site): the
        # dashboard's models can only be imported once a request arrives.
        from halobestie.dashboard import dashboard_snapshot

        response = JsonResponse(dashboard_snapshot(user=request.user))
        response["Cache-Control"] = "no-store"
        return response

    def mitra_password_reset_view(self, request, mitra_id):
        from halobestie.staff_admin import mitra_password_reset_view  # models: as above

        return mitra_password_reset_view(self, request, mitra_id)


class ControlCenterAdminConfig(AdminConfig):
    default_site = "halobestie.admin_site.ControlCenterSite"
