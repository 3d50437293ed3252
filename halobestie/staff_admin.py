"""Control-center pages for accounts that the admin's model pages do not cover: support makes a
Bestie's one-time password reset link (halobestie/accounts/staff.py)."""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse

from halobestie.accounts import staff
from mitras.models import Mitra


def mitra_password_reset_view(site, request, mitra_id):
    """GET: what the link does. POST: a fresh link, shown once (audited in the service)."""
    if not request.user.has_perm(staff.MITRA_RESET_PERMISSION):
        raise PermissionDenied
    mitra = get_object_or_404(Mitra.objects.select_related("user"), pk=mitra_id)
    link = None
    if request.method == "POST":
        link = staff.mitra_password_reset_link(actor=request.user, user=mitra.user, request=request)
    context = {
        **site.each_context(request),
        "title": f"Reset kata sandi Bestie {mitra.display_name}",
        "mitra": mitra,
        "link": link,
        "valid_hours": settings.PASSWORD_RESET_TIMEOUT // 3600,
        "opts": Mitra._meta,
    }
    return TemplateResponse(request, "admin/control_center/mitra_password_reset.html", context)
