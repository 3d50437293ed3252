"""The public application with two bench-only routes, for the beacon benchmark (never in
production code):

- `/bench/constant`: a constant-JSON DRF view with the same classes as the availability view
  (AllowAny, no authentication), inserted at the top of the public URLconf of THIS process only.
  Same server, same middleware, same DRF dispatch: the ceiling for `/api/v1/availability`.
- `/bench/raw`: a constant answered by this ASGI wrapper before Django (the transport's ceiling,
  for reference).
Everything else goes to `halobestie.asgi.public_application`.
"""

from halobestie.asgi import public_application  # first: it sets Django up  # isort: skip

from django.http import HttpResponse
from django.urls import clear_url_caches, path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from halobestie import urls_public

CONSTANT = b'{"online":100,"available":40,"busy":60,"updated_at":"2026-01-01T07:00:00+07:00"}'


class ConstantApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    def get(self, request):
        return HttpResponse(CONSTANT, content_type="application/json")


urls_public.urlpatterns.insert(0, path("bench/constant", ConstantApi.as_view()))
clear_url_caches()


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/bench/raw":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": CONSTANT})
        return
    await public_application(scope, receive, send)
