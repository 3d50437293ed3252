"""Accounts API routes (auth, me, devices) under /api/v1/."""

from django.urls import path

from halobestie.accounts import api

urlpatterns = [
    path("auth/otp/request", api.OtpRequestApi.as_view(), name="auth-otp-request"),
    path("auth/otp/verify", api.OtpVerifyApi.as_view(), name="auth-otp-verify"),
    path("auth/mitra/login", api.MitraLoginApi.as_view(), name="auth-mitra-login"),
    path("auth/token/refresh", api.TokenRefreshApi.as_view(), name="auth-token-refresh"),
    path("auth/logout", api.LogoutApi.as_view(), name="auth-logout"),
    path("me", api.MeApi.as_view(), name="me"),
    path("devices", api.DeviceRegisterApi.as_view(), name="devices"),
    path("devices/<str:token>", api.DeviceDeleteApi.as_view(), name="device-detail"),
]
