"""Mitra API routes under /api/v1/ (beacon, public profiles, mitra self-service)."""

from django.urls import path

from mitras import api

urlpatterns = [
    path("availability", api.AvailabilityApi.as_view(), name="availability"),
    path("mitras", api.MitraListApi.as_view(), name="mitras"),
    path("mitras/<int:mitra_id>", api.MitraDetailApi.as_view(), name="mitra-detail"),
    path("mitra/me", api.MitraMeApi.as_view(), name="mitra-me"),
    path("mitra/working-hours", api.MitraWorkingHoursApi.as_view(), name="mitra-working-hours"),
    path("mitra/status", api.MitraStatusApi.as_view(), name="mitra-status"),
    path("favourites", api.FavouriteListCreateApi.as_view(), name="favourites"),
    path("favourites/<int:mitra_id>", api.FavouriteDetailApi.as_view(), name="favourite-detail"),
    path("mitra/heartbeat", api.MitraHeartbeatApi.as_view(), name="mitra-heartbeat"),
]
