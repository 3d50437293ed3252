"""Accounts API routes (auth, me, devices) under /api/v1/."""

urlpatterns = []
