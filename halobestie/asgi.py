"""The two ASGI applications. Start here to find where everything goes.

- `public_application` (port 3000, served by uvicorn in production): the apps' REST API under
  /api/v1/ (`halobestie/urls_api.py` → each app's `urls.py`), the WebSocket chat under /ws/v1/
  (`halobestie/server/routing.py` → `sessions_app/consumers.py`), the Xendit webhooks and payment pages
  (`payments/urls_public.py`), and the probes. It has no admin.
- `internal_application` (port 3001, bound to 127.0.0.1 unless configured): the control center
  (Django admin), API docs, metrics, probes (`halobestie/urls_internal.py`).

Both run the same Django project; the listener is marked in the ASGI scope and the middleware in
`halobestie/server/listeners.py` picks the URLconf from that mark. Business logic lives in each app's
`services.py` (writes) and `selectors.py` (reads).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "halobestie.settings")

from django.core.asgi import get_asgi_application

django_http = get_asgi_application()  # sets Django up before anything imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from halobestie.server import listeners, routing  # noqa: E402
from halobestie.server.fastpath import FastRoutes  # noqa: E402
from halobestie.server.lifespan import LifespanApp  # noqa: E402
from halobestie.server.middleware import SocketObservabilityMiddleware  # noqa: E402

public_application = LifespanApp(
    listeners.MarkListener(
        ProtocolTypeRouter(
            {
                # The beacon and the public config from process memory, before Django
                # (halobestie/server/fastpath.py); everything else goes to Django.
                "http": FastRoutes(django_http),
                # Request id per socket, the open-sockets gauge, a log line at accept and close.
                "websocket": SocketObservabilityMiddleware(URLRouter(routing.websocket_urlpatterns)),
            }
        ),
        listeners.PUBLIC,
    ),
    listener=listeners.PUBLIC,
)

# The admin's static files are served by the internal app itself: staff traffic is small and
# this keeps the image free of a second web server.
internal_application = LifespanApp(
    listeners.MarkListener(
        ProtocolTypeRouter({"http": ASGIStaticFilesHandler(django_http)}), listeners.INTERNAL
    ),
    listener=listeners.INTERNAL,
)

application = public_application
