"""URLconf of the internal listener (port 3001, 127.0.0.1 unless configured): the control
center (Django admin), API docs, Prometheus metrics, probes. Never exposed publicly."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from halobestie.server import health, metrics

urlpatterns = [
    path("healthz", health.healthz, name="internal-healthz"),
    path("readyz", health.readyz, name="internal-readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[]),
        name="api-docs",
    ),
    # The control center's language switch (set_language: the `django_language` cookie).
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]

handler404 = "halobestie.errors.handler404"
handler500 = "halobestie.errors.handler500"
