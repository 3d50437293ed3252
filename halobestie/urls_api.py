"""Everything under /api/v1/, one include per bounded context."""

from django.urls import include, path

urlpatterns = [
    path("", include("halobestie.accounts.urls")),
    path("", include("halobestie.runtime.urls")),
    path("", include("mitras.urls")),
    path("", include("sessions_app.urls")),
    path("", include("promotions.urls")),
]
