"""Probes: /healthz (the process answers) and /readyz (it can serve traffic)."""

import logging

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from halobestie.db.locks import database_ping
from halobestie.server.drain import is_draining

logger = logging.getLogger(__name__)
_migrations_applied = False


def _has_unapplied_migrations(connection):
    """True while the database lags the code: a new image must not take traffic before its
    one-off migrate has run. Once all are applied the answer is cached for the process."""
    global _migrations_applied
    if _migrations_applied:
        return False
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    _migrations_applied = not plan
    return bool(plan)


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    if is_draining():
        return JsonResponse({"status": "draining"}, status=503)
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        database_ping()
        if _has_unapplied_migrations(connection):
            return JsonResponse({"status": "migrations_pending"}, status=503)
    except Exception:
        logger.warning("readiness: database unreachable", exc_info=True)
        return JsonResponse({"status": "database_unreachable"}, status=503)
    return JsonResponse({"status": "ready"})
