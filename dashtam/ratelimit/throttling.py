"""The DRF hook: counts a request after authentication, so user keys know the user.

It is DRF's DEFAULT_THROTTLE_CLASSES entry. DRF runs throttles in
``APIView.initial()`` after authentication and permissions, so ``request.user``
is the JWT's user (the middleware alone would only see an anonymous user).
Every rule of the request is counted in the one ``consume_many`` call: one
cache round trip per request whatever the number of rules.
"""

from __future__ import annotations

from rest_framework.throttling import BaseThrottle

from dashtam.api.middleware import is_api
from dashtam.ratelimit.enforcement import count_request, refusal, yields_to_lockout


class RateLimitRulesThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        django_request = request._request
        if not is_api(django_request):
            return True  # the rules cover /api/ only (not the sandbox provider's pages)
        match = getattr(django_request, "resolver_match", None)
        url_name = match.url_name if match is not None else None

        def data():
            # Parsed only for rules keyed on the body; a parse error is the view's
            # own answer (400/415), raised here a moment earlier.
            return request.data

        limits = count_request(django_request=django_request, url_name=url_name,
                               user=request.user, data_loader=data)
        if limits is None or not limits.refused:
            return True
        if yields_to_lockout(limits, django_request=django_request, data_loader=data):
            return True
        raise refusal(limits)

    def wait(self):
        return None
