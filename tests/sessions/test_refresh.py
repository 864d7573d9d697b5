"""Refresh always rotates; a replayed refresh token ends the whole session."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from sessions_mgmt.models import Session

pytestmark = pytest.mark.django_db

REFRESH = "/api/v1/auth/refresh"
SESSIONS = "/api/v1/auth/sessions"


def refresh(api_client, token):
    return api_client.post(REFRESH, {"refresh": token}, format="json")


def test_refresh_rotates_and_returns_a_new_pair_not_to_be_cached(user, start_session, api_client, client_for):
    issued = start_session(user)
    response = refresh(api_client, issued.refresh)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh", "expires_in"}
    assert body["refresh"] != issued.refresh and body["access"] != issued.access
    assert body["expires_in"] > 0
    assert response["Cache-Control"] == "no-store"
    session = Session.objects.get(pk=issued.session.pk)
    assert session.previous_refresh_jti == issued.session.refresh_jti
    assert session.rotated_at is not None
    assert AuditEvent.objects.filter(action="session.created", target_id=str(session.pk)).count() == 1
    assert AuditEvent.objects.filter(action="session.refreshed", target_id=str(session.pk)).count() == 1
    # The new access token works.
    client = api_client.__class__()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert client.get(SESSIONS).status_code == 200


def test_theft_scenario_reused_token_revokes_the_whole_session(
    user, start_session, api_client, django_capture_on_commit_callbacks
):
    issued = start_session(user)  # token A
    rotated = refresh(api_client, issued.refresh).json()  # A -> B

    with django_capture_on_commit_callbacks(execute=True):
        response = refresh(api_client, issued.refresh)  # A again

    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "TOKEN_REUSED"
    # B is dead, and so is its access token.
    assert refresh(api_client, rotated["refresh"]).json()["code"] == "SESSION_REVOKED"
    thief = api_client.__class__()
    thief.credentials(HTTP_AUTHORIZATION=f"Bearer {rotated['access']}")
    assert thief.get(SESSIONS).status_code == 401
    session = Session.objects.get(pk=issued.session.pk)
    assert session.revoked_at is not None and session.revoke_reason == "token_reuse"
    event = AuditEvent.objects.get(action="session.token_reuse_detected")
    assert event.target_id == str(session.pk) and str(event.actor_id) == str(user.pk)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [user.email]
    assert "used twice" in mail.outbox[0].body


def test_replay_within_the_grace_period_is_refused_but_keeps_the_session(
    user, start_session, api_client, settings
):
    settings.REFRESH_REUSE_GRACE_SECONDS = 30
    issued = start_session(user)
    rotated = refresh(api_client, issued.refresh).json()

    response = refresh(api_client, issued.refresh)
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_INVALID"
    assert Session.objects.get(pk=issued.session.pk).revoked_at is None
    assert refresh(api_client, rotated["refresh"]).status_code == 200


def test_refresh_of_a_revoked_session_is_refused(user, start_session, api_client):
    issued = start_session(user)
    Session.objects.filter(pk=issued.session.pk).update(revoked_at=timezone.now())
    response = refresh(api_client, issued.refresh)
    assert response.status_code == 401
    assert response.json()["code"] == "SESSION_REVOKED"


def test_session_past_its_maximum_age_cannot_be_refreshed(user, start_session, api_client):
    issued = start_session(user)
    Session.objects.filter(pk=issued.session.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = refresh(api_client, issued.refresh)
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_INVALID"


def test_tokens_never_outlive_the_session_maximum_age(user, start_session, settings):
    import jwt

    settings.SESSION_MAX_AGE = 120
    issued = start_session(user)
    for token in (issued.access, issued.refresh):
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] <= int(issued.session.expires_at.timestamp())
        assert claims["sid"] == str(issued.session.pk)
        assert "ver" in claims


@pytest.mark.parametrize("body", [{}, {"refresh": ""}, {"refresh": "garbage"}])
def test_bad_refresh_requests(api_client, body):
    response = api_client.post(REFRESH, body, format="json")
    assert response.status_code in (400, 401)
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] in ("VALIDATION_ERROR", "TOKEN_INVALID")


def test_access_token_cannot_be_used_to_refresh(user, start_session, api_client):
    issued = start_session(user)
    response = refresh(api_client, issued.access)
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_INVALID"


def test_refresh_updates_last_used_at(user, start_session, api_client):
    issued = start_session(user)
    earlier = timezone.now() - timedelta(hours=1)
    Session.objects.filter(pk=issued.session.pk).update(last_used_at=earlier)
    assert refresh(api_client, issued.refresh).status_code == 200
    assert Session.objects.get(pk=issued.session.pk).last_used_at > earlier


def test_a_session_older_than_the_maximum_age_ends_however_often_it_was_refreshed(
    user, start_session, api_client, client_for, settings
):
    issued = start_session(user)
    token = refresh(api_client, issued.refresh).json()["refresh"]
    Session.objects.filter(pk=issued.session.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.SESSION_MAX_AGE + 1)
    )
    response = refresh(api_client, token)
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_INVALID"
    assert client_for(issued).get(SESSIONS).status_code == 401


def test_lowering_the_maximum_age_applies_to_existing_sessions(user, start_session, api_client, settings):
    issued = start_session(user)
    Session.objects.filter(pk=issued.session.pk).update(created_at=timezone.now() - timedelta(days=2))
    settings.SESSION_MAX_AGE = 24 * 3600
    assert refresh(api_client, issued.refresh).json()["code"] == "TOKEN_INVALID"


def test_a_rotation_is_one_update_and_its_audit_row_on_postgresql(user, start_session, api_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("the one-statement rotation is PostgreSQL's (UPDATE ... FROM ... RETURNING)")
    issued = start_session(user)
    with CaptureQueriesContext(connection) as queries:
        response = refresh(api_client, issued.refresh)

    assert response.status_code == 200
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert [s for s in statements if s not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")] == ["UPDATE", "INSERT"]
    session = Session.objects.get(pk=issued.session.pk)
    assert (session.previous_refresh_jti, session.rotated_at is not None) == (issued.session.refresh_jti, True)
    event = AuditEvent.objects.get(action="session.refreshed", target_id=str(session.pk))
    assert (event.actor_id, event.actor_email, event.session_id) == (user.pk, user.email, str(session.pk))
    # The new refresh token is the session's live one, and carries the same session and version.
    assert refresh(api_client, response.json()["refresh"]).status_code == 200


@pytest.mark.parametrize("change", ["deactivated", "user_version_raised", "global_version_raised", "max_age_lowered"])
def test_a_refresh_that_no_longer_qualifies_is_refused_and_rotates_nothing(user, start_session, api_client,
                                                                          settings, change):
    """Every check of the one-statement rotation (and of the locked path) refuses, changing nothing."""
    from accounts.models import User
    from sessions_mgmt.models import SecurityConfig

    issued = start_session(user)
    if change == "deactivated":
        User.objects.filter(pk=user.pk).update(is_active=False)
    elif change == "user_version_raised":
        User.objects.filter(pk=user.pk).update(min_token_version=user.min_token_version + 1)
    elif change == "global_version_raised":
        SecurityConfig.objects.update_or_create(pk=1, defaults={"min_token_version": 99})
    else:
        Session.objects.filter(pk=issued.session.pk).update(created_at=timezone.now() - timedelta(days=2))
        settings.SESSION_MAX_AGE = 86400

    response = refresh(api_client, issued.refresh)

    expected = "SESSION_REVOKED" if change.endswith("version_raised") else "TOKEN_INVALID"
    assert (response.status_code, response.json()["code"]) == (401, expected)
    session = Session.objects.get(pk=issued.session.pk)
    assert (session.refresh_jti, session.rotated_at) == (issued.session.refresh_jti, None)
    assert not AuditEvent.objects.filter(action="session.refreshed").exists()
