"""The stolen-laptop story end to end, through the real login endpoint."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.sessions.conftest import CHROME_MAC, FIREFOX_WINDOWS

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"
SESSIONS = "/api/v1/auth/sessions"
REFRESH = "/api/v1/auth/refresh"


def login(user, password, ua):
    client = APIClient(HTTP_USER_AGENT=ua)
    response = client.post(LOGIN, {"email": user.email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    return client, body


def test_user_ends_the_thiefs_session_and_the_thiefs_tokens_die_at_once(user, password):
    laptop, laptop_login = login(user, password, FIREFOX_WINDOWS)  # the stolen laptop
    phone, phone_login = login(user, password, CHROME_MAC)
    assert laptop_login["session_id"] != phone_login["session_id"]
    assert laptop.get(SESSIONS).status_code == 200

    rows = phone.get(SESSIONS).json()
    assert [r["is_current"] for r in rows].count(True) == 1
    current = next(r for r in rows if r["is_current"])
    assert current["id"] == phone_login["session_id"]

    response = phone.delete(f"{SESSIONS}/others")
    assert response.json() == {"revoked": 1}

    assert laptop.get(SESSIONS).json()["code"] == "SESSION_REVOKED"
    thief = APIClient()
    assert thief.post(REFRESH, {"refresh": laptop_login["refresh"]}, format="json").status_code == 401
    assert phone.get(SESSIONS).status_code == 200
