"""Request context middleware: the first and last thing every request meets."""

from __future__ import annotations

import logging
import time

from dashtam import context
from dashtam.checks import forwarded_for_observe

logger = logging.getLogger("dashtam.request")


class RequestContextMiddleware:
    """Assigns the request id, keeps the context in a contextvar, echoes the id.

    The id is the incoming X-Request-ID only behind a trusted proxy; otherwise a new
    UUID, and the client's own value is echoed in X-Client-Request-ID and recorded as
    ``client_request_id`` (see ``dashtam.context.request_ids``).

    It sits first in MIDDLEWARE, so even a crashed request's response carries
    ``X-Request-ID`` and logs one access line with the id, status and duration.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        request_id, client_request_id = context.request_ids(request.META)
        request.request_id = request_id
        forwarded_for_observe(request.META)  # TRUSTED_PROXY_COUNT=0 behind a proxy: warn once
        token = context.set_context(context.context_for_request(request, request_id, client_request_id))
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            if client_request_id:
                response["X-Client-Request-ID"] = client_request_id
            ctx = context.get()
            logger.info(
                "request",
                extra={
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "route": ctx.route if ctx else "",
                    # Named parts of the duration (context.add_duration), such as hash_ms.
                    **(ctx.extra if ctx else {}),
                },
            )
            return response
        finally:
            context.reset(token)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = getattr(request, "resolver_match", None)
        if match is not None:
            context.update(route=match.route or "")
        # The admin authenticates with Django's session, which AuthenticationMiddleware has
        # loaded by now. The API binds its actor in DRF's authentication instead, because
        # request.user means nothing there before DRF has authenticated the bearer token.
        if request.path.startswith("/admin/"):
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                context.bind_actor(user)
        return None
