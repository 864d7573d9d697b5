"""Request count and latency by route pattern and status."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed

from dashtam.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS

UNMATCHED = "<unmatched>"


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
            match = getattr(request, "resolver_match", None)
            route = (match.route or match.view_name or UNMATCHED) if match is not None else UNMATCHED
            if route != "metrics":
                HTTP_REQUESTS.labels(route, request.method, str(status)).inc()
                HTTP_LATENCY.labels(route, str(status)).observe(time.perf_counter() - started)
