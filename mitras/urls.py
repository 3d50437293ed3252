"""Mitra API routes under /api/v1/ (public profiles, mitra self-service)."""

urlpatterns = []
