"""The sessions endpoints as a user sees them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from sessions_mgmt.models import Session
from tests.factories import UserFactory
from tests.sessions.conftest import FIREFOX_WINDOWS, SAFARI_IPHONE

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/auth/sessions"
LOGOUT = "/api/v1/auth/logout"
REFRESH = "/api/v1/auth/refresh"


def test_list_shows_device_details_newest_activity_first_and_one_current(user, start_session, client_for):
    old = start_session(user, ua=FIREFOX_WINDOWS, ip="198.51.100.4")
    current = start_session(user, ua=SAFARI_IPHONE)
    newest = start_session(user)
    Session.objects.filter(pk=old.session.pk).update(last_used_at=timezone.now() - timedelta(hours=3))
    Session.objects.filter(pk=current.session.pk).update(last_used_at=timezone.now() - timedelta(hours=2))
    Session.objects.filter(pk=newest.session.pk).update(last_used_at=timezone.now() - timedelta(hours=1))

    response = client_for(current).get(SESSIONS)

    assert response.status_code == 200
    rows = response.json()
    assert [r["id"] for r in rows][1:] == [str(newest.session.pk), str(old.session.pk)]
    # The current request just touched its own session, so it is the newest activity now.
    assert rows[0]["id"] == str(current.session.pk)
    assert [r["is_current"] for r in rows] == [True, False, False]
    firefox = rows[2]
    assert firefox["browser"] == "Firefox" and firefox["os"] == "Windows"
    assert firefox["ip_address"] == "198.51.100.4"
    assert firefox["location"] == "Unknown"
    assert set(firefox) == {"id", "device", "browser", "os", "ip_address", "location", "created_at",
                            "last_used_at", "expires_at", "is_current", "auth_methods"}
    assert firefox["auth_methods"] == ["password"]
    assert rows[0]["device"] == "iPhone"


def test_list_hides_revoked_sessions_and_other_users(user, start_session, client_for):
    mine = start_session(user)
    revoked = start_session(user)
    Session.objects.filter(pk=revoked.session.pk).update(revoked_at=timezone.now())
    start_session(UserFactory())
    ids = [r["id"] for r in client_for(mine).get(SESSIONS).json()]
    assert ids == [str(mine.session.pk)]


def test_list_query_count_does_not_grow_with_sessions(user, start_session, client_for, django_assert_max_num_queries):
    current = start_session(user)
    client = client_for(current)
    client.get(SESSIONS)  # warm the revocation cache
    for _ in range(15):
        start_session(user)
    with django_assert_max_num_queries(2):
        response = client.get(SESSIONS)
    assert len(response.json()) == 16


def test_list_needs_authentication(api_client):
    response = api_client.get(SESSIONS)
    assert response.status_code == 401
    assert response.json()["code"] == "NOT_AUTHENTICATED"


def test_revoke_one_session(user, start_session, client_for):
    current, other = start_session(user), start_session(user)
    response = client_for(current).delete(f"{SESSIONS}/{other.session.pk}")
    assert response.status_code == 204
    assert client_for(other).get(SESSIONS).json()["code"] == "SESSION_REVOKED"
    assert client_for(current).get(SESSIONS).status_code == 200
    event = AuditEvent.objects.get(action="session.revoked")
    assert event.target_id == str(other.session.pk)
    assert str(event.actor_id) == str(user.pk)


def test_revoking_the_current_session_is_refused(user, start_session, client_for):
    current = start_session(user)
    response = client_for(current).delete(f"{SESSIONS}/{current.session.pk}")
    assert response.status_code == 400
    assert response.json()["code"] == "CANNOT_REVOKE_CURRENT_SESSION"
    assert Session.objects.get(pk=current.session.pk).revoked_at is None


def test_another_users_session_is_not_found(user, start_session, client_for):
    current = start_session(user)
    stranger = start_session(UserFactory())
    for target in (stranger.session.pk, uuid.uuid4()):
        response = client_for(current).delete(f"{SESSIONS}/{target}")
        assert response.status_code == 404
        assert response.json()["code"] == "NOT_FOUND"
    assert Session.objects.get(pk=stranger.session.pk).revoked_at is None


def test_revoke_others_keeps_the_current_session(user, start_session, client_for):
    current, a, b = start_session(user), start_session(user), start_session(user)
    response = client_for(current).delete(f"{SESSIONS}/others")
    assert response.status_code == 200
    assert response.json() == {"revoked": 2}
    assert client_for(current).get(SESSIONS).status_code == 200
    assert client_for(a).get(SESSIONS).status_code == 401
    assert client_for(b).get(SESSIONS).status_code == 401
    rows = client_for(current).get(SESSIONS).json()
    assert [(r["id"], r["is_current"]) for r in rows] == [(str(current.session.pk), True)]


def test_revoke_all_ends_the_current_session_too(user, start_session, client_for, api_client):
    current, other = start_session(user), start_session(user)
    response = client_for(current).delete(f"{SESSIONS}/all")
    assert response.status_code == 200
    assert response.json() == {"revoked": 2}
    assert client_for(current).get(SESSIONS).json()["code"] == "SESSION_REVOKED"
    assert client_for(other).get(SESSIONS).status_code == 401
    assert api_client.post(REFRESH, {"refresh": current.refresh}, format="json").status_code == 401


def test_logout_ends_this_session_both_tokens(user, start_session, client_for, api_client):
    current, other = start_session(user), start_session(user)
    response = client_for(current).post(LOGOUT, {"refresh": current.refresh}, format="json")
    assert response.status_code == 204
    assert client_for(current).get(SESSIONS).status_code == 401
    assert api_client.post(REFRESH, {"refresh": current.refresh}, format="json").status_code == 401
    assert client_for(other).get(SESSIONS).status_code == 200
    assert AuditEvent.objects.filter(action="auth.logout", target_id=str(current.session.pk)).exists()


def test_logout_needs_authentication(user, start_session, api_client):
    current = start_session(user)
    response = api_client.post(LOGOUT, {"refresh": current.refresh}, format="json")
    assert response.status_code == 401
    assert Session.objects.get(pk=current.session.pk).revoked_at is None


def test_logout_refuses_a_refresh_token_of_another_session(user, start_session, client_for):
    current, other = start_session(user), start_session(user)
    response = client_for(current).post(LOGOUT, {"refresh": other.refresh}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_INVALID"
    assert Session.objects.filter(revoked_at__isnull=True).count() == 2


def test_logout_without_a_refresh_token_is_a_validation_error(user, start_session, client_for):
    current = start_session(user)
    response = client_for(current).post(LOGOUT, {}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert "refresh" in response.json()["errors"]
