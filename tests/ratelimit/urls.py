"""Stand-in endpoints named like the real routes, so the rules are tested on their own.

The real endpoints (accounts, sessions_mgmt, providers) are exercised in test_endpoints.py.
"""

from django.contrib import admin
from django.http import JsonResponse
from django.urls import path
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from dashtam import health
from dashtam.api.exceptions import RetryAfterError

LOCKED_EMAIL = "locked@example.com"


class PublicEcho(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        return Response({"ok": True})


class FakeLogin(PublicEcho):
    """Answers ACCOUNT_LOCKED for LOCKED_EMAIL, like the real login does for a locked account."""

    def post(self, request):
        if request.data.get("email") == LOCKED_EMAIL:
            raise RetryAfterError("ACCOUNT_LOCKED", "Too many failed sign-ins.", retry_after=3600)
        return Response({"ok": True})


class Private(APIView):
    authentication_classes: list = []  # tests use force_authenticate
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"ok": True})


class Unthrottled(PublicEcho):
    throttle_classes: list = []


def plain_callback(request, provider_key):
    return JsonResponse({"ok": True})


urlpatterns = [
    path("readyz", health.readyz, name="readyz"),
    path("api/v1/auth/login", FakeLogin.as_view(), name="auth-login"),
    path("api/v1/auth/register", PublicEcho.as_view(), name="auth-register"),
    path("api/v1/auth/refresh", PublicEcho.as_view(), name="auth-refresh"),
    path("api/v1/auth/request-password-reset", PublicEcho.as_view(), name="auth-request-password-reset"),
    path("api/v1/auth/me", Private.as_view(), name="auth-me"),
    path("api/v1/auth/sessions", Private.as_view(), name="sessions-list"),
    path("api/v1/providers", Private.as_view(), name="providers-list"),
    path("api/v1/providers/oauth/<str:provider_key>/callback", plain_callback,
         name="providers-oauth-callback"),
    path("api/v1/unthrottled", Unthrottled.as_view(), name="unthrottled"),
    path("sandbox/page", PublicEcho.as_view(), name="sandbox-page"),
    path("admin/", admin.site.urls),
]
