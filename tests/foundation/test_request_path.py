"""The short paths of the request (docs/performance.md) answer exactly as the long ones."""

from __future__ import annotations

import pytest
from django.http import Http404
from django.test import RequestFactory
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request

from dashtam.api.negotiation import ContentNegotiation
from dashtam.pages_middleware import _configured_policies

ACCEPTS = [None, "*/*", "application/json", "text/html", "application/json; indent=4",
           "application/*", "text/html, */*;q=0.1", "", "application/xml", "application/problem+json"]


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?format=api", "?page=2"])
@pytest.mark.parametrize("renderers", [[JSONRenderer], [JSONRenderer, BrowsableAPIRenderer],
                                       [BrowsableAPIRenderer, JSONRenderer]])
def test_negotiation_picks_what_drf_picks(accept, query, renderers):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(RequestFactory().get("/api/v1/x" + query, **headers))
    instances = [cls() for cls in renderers]

    def pick(negotiation):
        try:
            renderer, media_type = negotiation.select_renderer(request, instances)
        except NotAcceptable:
            return "406"
        except Http404:  # a ?format= no renderer has
            return "404"
        return type(renderer), media_type

    assert pick(ContentNegotiation()) == pick(DefaultContentNegotiation())


def test_every_json_api_route_is_a_drf_view_exempt_from_csrf():
    """What lets the page-only middleware pass /api/v1/ by (dashtam/pages_middleware.py)."""
    from django.urls import URLPattern, URLResolver, get_resolver
    from rest_framework.views import APIView

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.callback

    api = [(route, view) for route, view in walk(get_resolver().url_patterns) if route.startswith("api/v1/")]
    assert api
    for route, view in api:
        cls = getattr(view, "cls", None)
        assert isinstance(cls, type) and issubclass(cls, APIView), route
        assert getattr(view, "csrf_exempt", False), route


def test_api_responses_keep_every_security_header_and_no_cookie(client):
    page = client.get("/admin/login/")
    api = client.get("/api/v1/nothing-here")
    for name in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy",
                 "Cross-Origin-Opener-Policy", "Content-Security-Policy"):
        assert api[name] == page[name], name
    assert api["Content-Security-Policy"] == _configured_policies()[0]
    assert not api.cookies
    assert "csrftoken" in page.cookies


def test_a_changed_policy_setting_is_the_policy_sent(client, settings):
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    assert client.get("/api/v1/nothing-here")["Content-Security-Policy"] == "default-src 'none'"


def test_cors_still_answers_on_the_api(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    response = client.options("/api/v1/auth/login", HTTP_ORIGIN="https://app.example.com",
                              HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
