"""Helpers for the accounts tests."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from tests.factories import UserFactory

TOKEN_RE = re.compile(r"token=([A-Za-z0-9_\-]+)")
NEW_PASSWORD = "Another-Secret-77-Horse"


def token_from(message) -> str:
    body = message.body if hasattr(message, "body") else message
    match = TOKEN_RE.search(body)
    assert match, f"no token in {body!r}"
    return match.group(1)


def outbox_to(address: str) -> list:
    return [m for m in mail.outbox if address in m.to]


def login(client, email: str, password: str):
    return client.post("/api/v1/auth/login", {"email": email, "password": password}, format="json")


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    """These tests count lockout failures, not requests: the rate limits have their own tests."""
    settings.RATELIMIT_ENABLE = False


@pytest.fixture
def unverified_user(db, password):
    return UserFactory(password=password, email_verified_at=None)


@pytest.fixture
def auth_client(api_client, user, password):
    """An API client logged in as ``user``; ``.login_body`` holds the login response."""
    response = login(api_client, user.email, password)
    assert response.status_code == 200, response.content
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    api_client.login_body = response.json()
    return api_client
