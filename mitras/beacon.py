"""The beacon as a fast route (halobestie/server/fastpath.py): `GET /api/v1/availability` answered
from process memory, rebuilt at most every FAST_ROUTE_CACHE_SECONDS by the same builder as the
view (`selectors.availability_beacon_json`: the Valkey snapshot, else computed from Postgres and
cached in Valkey, else computed from Postgres when Valkey is down). So per process: one builder
call per second at most, whatever the request rate; Valkey down costs one Postgres query per
second, not one per request."""

from django.conf import settings

from halobestie.server import fastpath
from mitras import selectors

ROUTE = "api/v1/availability"


def _build():
    return selectors.availability_beacon_json()


snapshot = fastpath.CachedBody(
    "availability",
    _build,
    ttl=settings.FAST_ROUTE_CACHE_SECONDS,
    stale_seconds=settings.FAST_ROUTE_STALE_SECONDS,
)


def register():
    fastpath.register("/" + ROUTE, route=ROUTE, handler=snapshot.get)
