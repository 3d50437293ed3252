"""Promotions API routes under /api/v1/."""

from django.urls import path

from promotions import api

urlpatterns = [
    path("vouchers/<str:code>", api.VoucherPreviewApi.as_view(), name="voucher-preview"),
]
