"""Liveness and readiness for load balancers and operators.

The hub checks what it owns (database, cache, broker). Apps add their own from their
``AppConfig.ready``, so the hub imports no app: :func:`register_readiness_check` for a
check that can make the service degraded, :func:`register_readiness_detail` for a
section of the body that informs and never changes the status (providers: its
circuit breakers).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.permissions import AllowAny

logger = logging.getLogger("dashtam.health")
CHECK_TIMEOUT = 2.0
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")


def _public(view):
    """A public operations endpoint: no authentication, no throttling, no database."""
    view = throttle_classes([])(view)
    view = permission_classes([AllowAny])(view)
    view = authentication_classes([])(view)
    return api_view(["GET"])(view)


_STATUS = inline_serializer("HealthStatus", {"status": serializers.CharField()})
_READY = inline_serializer("ReadyStatus", {
    "status": serializers.ChoiceField(choices=["ok", "degraded", "unavailable"]),
    "checks": inline_serializer("ReadyChecks", {
        "database": serializers.CharField(), "cache": serializers.CharField(),
        "broker": serializers.CharField()}),
    "circuit_breakers": serializers.DictField(child=serializers.DictField()),
})


@extend_schema(tags=["operations"], summary="Liveness", responses={200: _STATUS}, auth=[])
@_public
def healthz(request):
    """Liveness: the process answers. Touches nothing."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    finally:
        connection.close()  # this runs in a pool thread: do not leak its connection


class CacheDegraded(Exception):
    """The cache is unreachable: reported, not fatal (rate limits fail open)."""


def _check_cache() -> str:
    key = f"readyz:{uuid.uuid4().hex}"
    try:
        cache.set(key, "1", 5)
        ok = cache.get(key) == "1"
        cache.delete(key)
    except Exception as exc:  # noqa: BLE001 - any backend error is an unreachable cache
        raise CacheDegraded(
            f"degraded: unreachable ({type(exc).__name__}); rate limits fail open, "
            "revocation and lockout use the database"
        ) from None
    if not ok:
        raise CacheDegraded("degraded: read-back failed; rate limits fail open")
    return "ok" if settings.REDIS_URL else "ok (local memory)"


def _check_broker() -> str:
    from dashtam.celery import app

    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "ok (eager)"
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT)
    return "ok" if not settings.CELERY_EMBEDDED else "ok (embedded)"


def _run(check) -> tuple[bool, str]:
    future = _pool.submit(check)
    try:
        return True, future.result(timeout=CHECK_TIMEOUT)
    except FutureTimeout:
        return False, "timeout"
    except CacheDegraded as exc:
        logger.warning("readiness check: cache %s", exc)
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001 - a readiness probe reports, it does not raise
        logger.warning("readiness check failed: %s", type(exc).__name__)
        return False, f"error: {type(exc).__name__}"


# name -> check (returns its message, raises when not ready), beside the hub's own three.
_checks: dict[str, Callable[[], str]] = {}
# name -> report (a JSON-able dict), each a top-level key of the readiness body.
_details: dict[str, Callable[[], dict]] = {}


def register_readiness_check(name: str, check: Callable[[], str]) -> None:
    """Add ``check`` to /readyz's ``checks`` under ``name`` (an app's, from its ``ready()``).

    It runs beside the database, cache and broker checks, with the same timeout: it
    returns its message ("ok", ...) or raises, which marks the service ``degraded``
    (never ``unavailable``: only the database decides that). Registering a name again
    replaces its check.
    """
    if name in ("database", "cache", "broker"):
        raise ValueError(f"{name!r} is a check of the hub's own")
    _checks[name] = check


def register_readiness_detail(name: str, report: Callable[[], dict]) -> None:
    """Add ``report()`` to the /readyz body under ``name``: information for operators
    that never changes the status. A report that raises is logged and shown as ``{}``."""
    if name in ("status", "checks"):
        raise ValueError(f"{name!r} is a key of the readiness body itself")
    _details[name] = report


def _detail(name: str, report: Callable[[], dict]) -> dict:
    try:
        return report()
    except Exception:  # noqa: BLE001 - a readiness probe reports, it does not raise
        logger.warning("readiness detail %s unavailable", name)
        return {}


@extend_schema(
    tags=["operations"], summary="Readiness", auth=[],
    responses={200: _READY, 503: OpenApiResponse(_READY, description="The database is unavailable.")},
)
@_public
def readyz(request):
    """Readiness: database, cache and broker, each with a short timeout.

    The database is required (503 without it). A cache outage is reported as
    ``degraded`` but stays 200: rate limits fail open, and revocation and lockout
    fall back to the database, so the service still serves safely.
    """
    to_run = (("database", _check_database), ("cache", _check_cache), ("broker", _check_broker),
              *_checks.items())
    results = {name: _run(fn) for name, fn in to_run}
    checks = {name: message for name, (ok, message) in results.items()}
    db_ok = results["database"][0]
    degraded = not all(ok for ok, _ in results.values())
    status = "ok" if not degraded else ("degraded" if db_ok else "unavailable")
    body = {"status": status, "checks": checks,
            **{name: _detail(name, report) for name, report in _details.items()}}
    return JsonResponse(body, status=200 if db_ok else 503)
