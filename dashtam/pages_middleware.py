"""Middleware only pages need, passed by on the JSON API; and the CSP header built once.

Every route under ``/api/v1/`` is a DRF view that authenticates with a bearer token and
is exempt from CSRF (DRF's ``APIView.as_view``): no cookie session, no ``request.user``
from that session, no flash messages and no static files (a test holds every route there
to that). The subclasses here hand such a request straight to the next middleware and
keep their whole behaviour for everything else: the admin, the account pages, the API's
documentation and schema (``/api/docs/``, ``/api/schema/``), health checks.

What every response needs stays in the chain for the API too: the security headers
(``SecurityMiddleware``, ``X-Frame-Options``, the CSP header below), CORS,
``CommonMiddleware`` (ALLOWED_HOSTS and APPEND_SLASH), the rate-limit headers and axes.
Django's own ``CsrfViewMiddleware`` stays as it is (``check --deploy`` looks for it by
name; on an exempt view it costs little).
"""

from __future__ import annotations

from csp import middleware as csp_middleware
from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.utils import build_policy
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.core.signals import setting_changed
from django.dispatch import receiver
from whitenoise import middleware as whitenoise_middleware

# The JSON API. /api/docs/ (an HTML page) and /api/schema/ keep the full chain.
JSON_API_PREFIX = "/api/v1/"


def is_json_api(request) -> bool:
    return request.path.startswith(JSON_API_PREFIX)


class _PagesOnly:
    def __call__(self, request):
        if is_json_api(request):
            return self.get_response(request)
        return super().__call__(request)


class WhiteNoiseMiddleware(_PagesOnly, whitenoise_middleware.WhiteNoiseMiddleware):
    """Static files; never under /api/v1/."""


class SessionMiddleware(_PagesOnly, sessions_middleware.SessionMiddleware):
    """The admin's and the account pages' cookie session."""


class AuthenticationMiddleware(_PagesOnly, auth_middleware.AuthenticationMiddleware):
    """``request.user`` from the session; the API's user comes from DRF's authentication."""


class MessageMiddleware(_PagesOnly, messages_middleware.MessageMiddleware):
    """The admin's flash messages."""


# --- Content-Security-Policy ------------------------------------------------------------
_PER_RESPONSE = ("_csp_config", "_csp_update", "_csp_replace",
                 "_csp_config_ro", "_csp_update_ro", "_csp_replace_ro")
_policies: dict[str, tuple[str, str]] = {}


@receiver(setting_changed)
def _forget_policies(*, setting, **kwargs):
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _policies.clear()


def _configured_policies() -> tuple[str, str]:
    """(policy, report-only policy) from the settings alone, as django-csp builds them."""
    found = _policies.get("")
    if found is None:
        found = _policies[""] = (build_policy(), build_policy(report_only=True))
    return found


class CSPMiddleware(csp_middleware.CSPMiddleware):
    """django-csp's, with the policy text built once instead of on every response.

    A response whose policy is the settings' alone (no nonce was asked for, no
    ``@csp_update``-style decorator left its marks) gets the header text built at the
    first such response; anything else goes through django-csp as before.
    """

    def process_response(self, request, response):
        if getattr(request, "_csp_nonce", None) is not None or any(
                hasattr(response, name) for name in _PER_RESPONSE):
            return super().process_response(request, response)
        if response.status_code in (500, 404) and settings.DEBUG:
            return response
        policy, policy_ro = _configured_policies()
        for header, value, exempt, setting in (
            (HEADER, policy, "_csp_exempt", "CONTENT_SECURITY_POLICY"),
            (HEADER_REPORT_ONLY, policy_ro, "_csp_exempt_ro", "CONTENT_SECURITY_POLICY_REPORT_ONLY"),
        ):
            if not value or getattr(response, exempt, False) is not False or header in response:
                continue
            prefixes = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES", None) or ()
            if not request.path_info.startswith(tuple(prefixes)):
                response[header] = value
        # As django-csp does: a nonce asked for after the header is written is an error.
        request.csp_nonce = csp_middleware.CheckableLazyObject(self._csp_nonce_post_response)
        return response
