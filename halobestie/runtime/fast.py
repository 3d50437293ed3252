"""`GET /api/v1/config` as a fast route (halobestie/server/fastpath.py): the same bytes as
`PublicConfigApi` (DRF's JSON renderer over `get_config().public_json()`), kept in process memory
and rebuilt at most every FAST_ROUTE_CACHE_SECONDS (a save reaches every process within that, on
top of the runtime config's own cache)."""

from django.conf import settings
from rest_framework.renderers import JSONRenderer

from halobestie.runtime.selectors import get_config
from halobestie.server import fastpath

ROUTE = "api/v1/config"


def _build():
    return JSONRenderer().render(get_config().public_json())


body = fastpath.CachedBody(
    "config", _build, ttl=settings.FAST_ROUTE_CACHE_SECONDS, stale_seconds=settings.FAST_ROUTE_STALE_SECONDS
)


def register():
    fastpath.register("/" + ROUTE, route=ROUTE, handler=body.get)
