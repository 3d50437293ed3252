"""`GET /api/v1/config` as a fast route (halobestie/server/fastpath.py): the same bytes as
`PublicConfigApi` (DRF's JSON renderer over `get_config().public_json()`), kept in process memory
and rebuilt at most every FAST_ROUTE_CACHE_SECONDS; dropped at once with the runtime config's own
cache when any process saves (runtime/broadcast.py)."""

from django.conf import settings
from rest_framework.renderers import JSONRenderer

from halobestie.runtime.selectors import get_config, on_invalidate
from halobestie.server import fastpath

ROUTE = "api/v1/config"


def _build():
    return JSONRenderer().render(get_config().public_json())


body = fastpath.CachedBody(
    "config", _build, ttl=settings.FAST_ROUTE_CACHE_SECONDS, stale_seconds=settings.FAST_ROUTE_STALE_SECONDS
)


def register():
    fastpath.register("/" + ROUTE, route=ROUTE, handler=body.get)
    on_invalidate(body.clear)  # a save or a rollback anywhere: rebuilt from the new config
