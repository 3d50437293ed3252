"""HTML page of the public listener: a Bestie sets a new password through the one-time link
support handed over (halobestie/accounts/staff.py)."""

from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from halobestie.accounts import staff
from halobestie.errors import NotFound, ServiceError


@never_cache
@require_http_methods(["GET", "POST"])
def mitra_password_reset(request, uidb64, token):
    """GET: the form while the link is good (404 page otherwise). POST: the new password twice."""
    context = {"errors": [], "done": False}
    try:
        user = staff.mitra_password_reset_user(uidb64=uidb64, token=token)
    except NotFound as error:
        return render(
            request, "accounts/mitra_password_reset.html", {**context, "invalid": error.detail}, status=404
        )
    context["name"] = getattr(getattr(user, "mitra", None), "display_name", "") or user.display_name
    if request.method == "POST":
        password = request.POST.get("password", "")
        if password != request.POST.get("password_again", ""):
            context["errors"] = ["Kedua kata sandi tidak sama."]
        else:
            try:
                staff.mitra_password_reset_complete(
                    uidb64=uidb64, token=token, password=password, request=request
                )
            except NotFound as error:
                return render(
                    request,
                    "accounts/mitra_password_reset.html",
                    {**context, "invalid": error.detail},
                    status=404,
                )
            except ServiceError as error:
                context["errors"] = [
                    message for messages in (error.fields or {}).values() for message in messages
                ]
            else:
                context["done"] = True
        if not context["done"]:
            return render(request, "accounts/mitra_password_reset.html", context, status=400)
    return render(request, "accounts/mitra_password_reset.html", context)
