"""Fixtures for the sessions tests: a logged-in session without going through the login view."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import RequestFactory

CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)


@pytest.fixture(autouse=True)
def _fresh_revocation_cache():
    """Cached session states and versions must not leak from one test's database to the next."""
    from sessions_mgmt import revocation

    def forget():
        revocation.reset_process_state()
        # Only our keys: on Redis the same database may hold the broker's queues.
        if hasattr(cache, "delete_pattern"):
            cache.delete_pattern("sessions:*")
        else:
            cache.clear()

    forget()
    yield
    forget()


@pytest.fixture
def start_session():
    """start_session(user, ua=..., ip=...) -> IssuedTokens, as login would."""
    from sessions_mgmt.services import session_start

    def start(user, *, ua: str = CHROME_MAC, ip: str = "203.0.113.7"):
        request = RequestFactory().post("/api/v1/auth/login", HTTP_USER_AGENT=ua, REMOTE_ADDR=ip)
        return session_start(user=user, request=request)

    return start


@pytest.fixture
def client_for():
    """client_for(issued) -> an APIClient sending that session's access token."""
    from rest_framework.test import APIClient

    def make(issued):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.access}")
        return client

    return make
