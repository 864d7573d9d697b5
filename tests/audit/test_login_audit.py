"""A failed login, as staff will later find it in the trail."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

SECRET = "Wrong-But-Secret-Password-1!"


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected_ip"),
    [
        (0, None, "192.0.2.10"),
        (0, "6.6.6.6", "192.0.2.10"),  # no trusted proxy: a client cannot choose its IP
        (1, "198.51.100.20", "198.51.100.20"),
        (1, "6.6.6.6, 198.51.100.20", "198.51.100.20"),  # spoofed first hop, proxy-appended last
    ],
)
def test_a_failed_login_writes_one_row_with_the_request_context(
    api_client, user, settings, proxies, forwarded, expected_ip,
):
    settings.TRUSTED_PROXY_COUNT = proxies
    headers = {"REMOTE_ADDR": "192.0.2.10", "HTTP_X_REQUEST_ID": "login-req-42", "HTTP_USER_AGENT": "Firefox/130"}
    if forwarded:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    response = api_client.post("/api/v1/auth/login", {"email": user.email, "password": SECRET},
                               format="json", **headers)
    assert response.status_code == 401
    request_id = response["X-Request-ID"]
    assert response.json()["request_id"] == request_id
    # The client's X-Request-ID is the request id only through a trusted proxy.
    assert (request_id == "login-req-42") == (proxies > 0)

    event = AuditEvent.objects.get(action="auth.login.failed")
    assert event.outcome == "failure"
    assert event.request_id == request_id
    assert event.client_request_id == (None if proxies else "login-req-42")
    assert event.ip == expected_ip
    assert event.route == "api/v1/auth/login" and event.path == "/api/v1/auth/login"
    assert event.method == "POST" and event.user_agent == "Firefox/130"
    assert event.actor_email == user.email
    assert SECRET not in str(event.extra) and "password" not in {k.lower() for k in event.extra}


def test_a_failed_login_for_an_unknown_address_is_recorded_too(api_client, db):
    response = api_client.post("/api/v1/auth/login", {"email": "ghost@example.com", "password": SECRET},
                               format="json", HTTP_X_REQUEST_ID="login-req-ghost")
    assert response.status_code == 401
    event = AuditEvent.objects.get(action="auth.login.failed")
    assert event.request_id == response["X-Request-ID"] and event.actor_id is None
    assert event.client_request_id == "login-req-ghost"
    assert SECRET not in str(event.extra)


def test_a_successful_login_binds_the_session_to_later_rows(api_client, user, password):
    response = api_client.post("/api/v1/auth/login", {"email": user.email, "password": password},
                               format="json", HTTP_X_REQUEST_ID="login-req-ok")
    assert response.status_code == 200
    session_id = response.json()["session_id"]
    logout = api_client.post("/api/v1/auth/logout", {"refresh": response.json()["refresh"]}, format="json",
                             HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}",
                             HTTP_X_REQUEST_ID="logout-req")
    assert logout.status_code == 204
    event = AuditEvent.objects.get(action="auth.logout")
    assert event.request_id == logout["X-Request-ID"] and event.client_request_id == "logout-req"
    assert event.session_id == session_id and event.actor_id == user.pk
