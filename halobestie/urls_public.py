"""URLconf of the public listener (port 3000): the apps' API, webhooks, payment pages, probes.

It has no admin and no API docs: those live only in `urls_internal`. Anything not matched here
answers 404 in the error envelope, whatever the method.
"""

from django.urls import include, path, re_path

from halobestie import errors
from halobestie.accounts import pages as account_pages
from halobestie.server import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/v1/", include("halobestie.urls_api")),
    path("", include("payments.urls_public")),
    path(
        "mitra/password-reset/<str:uidb64>/<str:token>/",
        account_pages.mitra_password_reset,
        name="mitra-password-reset",
    ),
    re_path(r"^.*$", errors.handler404, name="not-found"),
]

handler400 = "halobestie.errors.handler400"
handler403 = "halobestie.errors.handler403"
handler404 = "halobestie.errors.handler404"
handler500 = "halobestie.errors.handler500"
