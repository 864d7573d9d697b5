"""Request count and latency by route pattern and status."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed

from dashtam.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS, never_raises

UNMATCHED = "<unmatched>"
# The client chooses the method: anything else is one label, so series stay bounded.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """Second in MIDDLEWARE (after the request context), so it times what the client waits for.

    The route label is the URL pattern (``api/v1/auth/me``), never the raw path, so
    the number of series stays bounded whatever clients send; requests that match
    no route share one label. Scrapes of /metrics itself are not counted.
    """

    def __init__(self, get_response):
        if not settings.METRICS_ENABLED:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            _observe(request, status, started)


@never_raises
def _observe(request, status: int, started: float) -> None:
    match = getattr(request, "resolver_match", None)
    route = (match.route or match.view_name or UNMATCHED) if match is not None else UNMATCHED
    if route != "metrics":
        method = request.method if request.method in METHODS else "OTHER"
        HTTP_REQUESTS.labels(route, method, str(status)).inc()
        HTTP_LATENCY.labels(route, str(status)).observe(time.perf_counter() - started)
