from django.urls import path

from halobestie.runtime.api import PublicConfigApi

urlpatterns = [path("config", PublicConfigApi.as_view(), name="config")]
