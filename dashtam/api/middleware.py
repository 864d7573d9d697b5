"""Middleware that keeps /api/ speaking problem+json, and refuses plain HTTP in production."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpResponsePermanentRedirect

from dashtam.api.problems import PROBLEM_CONTENT_TYPE, STATUS_CODES, problem_response

logger = logging.getLogger("dashtam.api")


def is_api(request) -> bool:
    return request.path.startswith("/api/")


class ProblemDetailsMiddleware:
    """Turns every 4xx/5xx under /api/ that is not already problem+json into one.

    DRF views answer problem+json through the exception handler. What reaches
    here is Django's own: an unknown route (404), a view-level 405, a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE, a crash outside DRF, a dead database.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not is_api(request) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE):
            return response
        status = response.status_code
        code = STATUS_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
        headers = {}
        for name in ("Retry-After", "Allow", "WWW-Authenticate"):
            if response.has_header(name):
                headers[name] = response[name]
        return problem_response(request, code=code, status=status, headers=headers)

    def process_exception(self, request, exc):
        if not is_api(request):
            return None
        if isinstance(exc, RequestDataTooBig):
            return problem_response(request, code="PAYLOAD_TOO_LARGE", status=413)
        if isinstance(exc, (OperationalError, InterfaceError)):
            logger.error("database unavailable: %s", type(exc).__name__)
            return problem_response(
                request, code="SERVICE_UNAVAILABLE", status=503, headers={"Retry-After": "5"}
            )
        logger.exception("unhandled exception", exc_info=exc)
        return problem_response(request, code="INTERNAL_ERROR", status=500)


class HttpsOnlyApiMiddleware:
    """With REQUIRE_HTTPS (production), /api/ over plain HTTP gets 403, never a redirect.

    A redirect would come after the client already sent its bearer token in clear
    and would teach clients that http:// works. Other paths (admin) are redirected.
    The health endpoints stay reachable for load balancers on the private network.
    ``SECURE_PROXY_SSL_HEADER`` counts only when TRUSTED_PROXY_COUNT > 0.
    """

    EXEMPT = ("/healthz", "/readyz", "/metrics")  # /metrics has its own guard (observability.views)

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
        if proxy_header and settings.TRUSTED_PROXY_COUNT <= 0:
            # With no trusted proxy in front, the forwarded scheme comes from the client
            # itself: it must not be able to claim HTTPS (nor should anything after us).
            request.META.pop(proxy_header[0], None)
        if settings.REQUIRE_HTTPS and not request.is_secure() and not request.path.startswith(self.EXEMPT):
            if is_api(request):
                return problem_response(
                    request, code="PERMISSION_DENIED", status=403,
                    detail="HTTPS is required. Plain HTTP requests are refused.",
                )
            return HttpResponsePermanentRedirect("https://" + request.get_host() + request.get_full_path())
        return self.get_response(request)


