"""GET /metrics: the Prometheus text format, for a scraper that proves who it is.

Never public. With neither METRICS_BEARER_TOKEN nor METRICS_ALLOWED_NETWORKS
set (or with METRICS_ENABLED off) the route answers 404, as if it did not exist.
Otherwise a request is served when it carries ``Authorization: Bearer <token>``
matching METRICS_BEARER_TOKEN, or comes from an address in
METRICS_ALLOWED_NETWORKS (the client IP as TRUSTED_PROXY_COUNT decides it);
anything else gets 403.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseForbidden
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from dashtam import context
from dashtam.observability.collectors import StateCollector


def _networks() -> list:
    return [ipaddress.ip_network(n.strip(), strict=False) for n in settings.METRICS_ALLOWED_NETWORKS if n.strip()]


def allowed(request) -> bool:
    token = settings.METRICS_BEARER_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header[:7].lower() == "bearer " and hmac.compare_digest(
            header[7:].strip().encode(), token.encode()):
        return True
    networks = _networks()
    if networks:
        ctx = context.get()
        ip = ctx.ip if ctx is not None else None
        try:
            address = ipaddress.ip_address(ip or "")
        except ValueError:
            return False
        return any(address in network for network in networks)
    return False


def registry() -> CollectorRegistry:
    """This process's metrics, or every worker's (multiprocess mode), plus the scrape-time gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
    else:
        scrape = CollectorRegistry()
        scrape.register(_Delegate(REGISTRY))
    scrape.register(StateCollector())
    return scrape


class _Delegate:
    def __init__(self, source):
        self.source = source

    def collect(self):
        return self.source.collect()


@require_GET
def metrics(request):
    if not settings.METRICS_ENABLED or not (settings.METRICS_BEARER_TOKEN or settings.METRICS_ALLOWED_NETWORKS):
        raise Http404
    if not allowed(request):
        return HttpResponseForbidden("forbidden\n", content_type="text/plain")
    response = HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
