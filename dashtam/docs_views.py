"""Swagger UI and the development home page, both served under the strict CSP.

drf-spectacular's stock Swagger page starts Swagger UI with an inline ``<script>``,
which ``script-src 'self'`` (no ``'unsafe-inline'``) rightly blocks: the page stayed
blank in a real browser. Here the page carries its configuration in ``data-``
attributes and a static script of ours (``dashtam/swagger-init.js``) starts the UI,
so no inline script, nonce or hash is needed.
"""

from __future__ import annotations

from django.http import HttpResponsePermanentRedirect
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import Resolver404, resolve
from drf_spectacular.views import SpectacularSwaggerView


class SwaggerUiView(SpectacularSwaggerView):
    template_name = "dashtam/swagger_ui.html"


# Pages linked from GET / when they are routed (the account pages arrive later).
OPTIONAL_LINKS = [
    ("/account/", "Your account", "Sign in, security, brokerage connections."),
]


def _routed(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def home(request):
    """GET /: where a newcomer starts (the API docs, the admin, the account pages once they exist)."""
    links = [
        ("/api/docs/", "API documentation", "Swagger UI: sign in, press Authorize, try every endpoint."),
        ("/api/schema/", "OpenAPI schema", "The machine-readable contract (YAML; ?format=json for JSON)."),
        ("/admin/", "Admin", "For staff: users, sessions, provider connections, the audit log."),
    ]
    links += [link for link in OPTIONAL_LINKS if _routed(link[0])]
    return render(request, "dashtam/home.html", {"links": links})


def favicon(request):
    """Browsers ask for /favicon.ico on every page (the admin's too): answer, rather than 404."""
    return HttpResponsePermanentRedirect(static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png"))
