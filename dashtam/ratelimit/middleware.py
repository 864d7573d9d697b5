"""Rate-limit headers on every counted response, the audit event, and non-DRF paths.

DRF views are counted by ``RateLimitRulesThrottle`` after authentication. This
middleware counts what DRF never sees: plain Django views under /api/ and paths
no route matches (so scanning unknown URLs spends the "*" budget too). On the way
out it adds X-RateLimit-Limit/Remaining/Reset and writes the one aggregated
``ratelimit.exceeded`` audit event of a newly limited key.
"""

from __future__ import annotations

import json

from django.http import HttpResponse
from rest_framework.views import APIView

from dashtam.api.middleware import is_api
from dashtam.api.problems import problem_response
from dashtam.ratelimit.enforcement import count_request, record_violations, refusal
from dashtam.ratelimit.rules import rules_for


def _is_drf_view(view_func) -> bool:
    cls = getattr(view_func, "cls", None)
    return isinstance(cls, type) and issubclass(cls, APIView)


def _json_body(request):
    def load():
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    return load


def _refused_response(request, limits):
    exc = refusal(limits)
    return problem_response(request, code=exc.problem_code, status=exc.status_code,
                            detail=str(exc.detail), headers=exc.headers)


# Pages outside /api/ that rules may name: the admin's login form is a login like
# POST auth/login, and shares its rule (docs/ratelimits.md).
COUNTED_PAGES = frozenset({"admin:login"})


def _named(rule, name: str) -> bool:
    """Whether ``rule`` names the page ``name`` itself, not only through "*" (every API route)."""
    return any(route == name or (route.endswith("*") and route != "*" and name.startswith(route[:-1]))
               for route in rule.routes)


def _admin_login_count(request):
    """Count a POST to a page in COUNTED_PAGES under the rules that name it; 429 when spent."""
    match = getattr(request, "resolver_match", None)
    if request.method != "POST" or match is None or match.view_name not in COUNTED_PAGES:
        return None
    name = match.view_name
    limits = count_request(django_request=request, url_name=name, user=None, data_loader=lambda: request.POST,
                           rules=tuple(rule for rule in rules_for(name, request.method) if _named(rule, name)))
    if limits is None or not limits.refused:
        return None
    response = HttpResponse("Too many login attempts. Try again later.", status=429,
                            content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(max(1, limits.retry_after))
    return response


class RateLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        limits = getattr(request, "ratelimit", None)
        if limits is None and is_api(request) and getattr(request, "resolver_match", None) is None:
            # No route matched: count it under the rules for "any path" ("*").
            limits = count_request(django_request=request, url_name=None,
                                   user=None, data_loader=_json_body(request))
            if limits is not None and limits.refused:
                response = _refused_response(request, limits)
        if limits is None:
            return response
        for name, value in limits.headers().items():
            if not response.has_header(name):
                response[name] = value
        record_violations(limits)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not is_api(request):
            return _admin_login_count(request)
        if _is_drf_view(view_func):
            return None
        match = getattr(request, "resolver_match", None)
        user = getattr(request, "user", None)
        limits = count_request(django_request=request, url_name=match.url_name if match else None,
                               user=user, data_loader=_json_body(request))
        if limits is not None and limits.refused:
            return _refused_response(request, limits)
        return None
