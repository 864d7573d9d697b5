"""Access tokens stop working the moment their session is revoked."""

from __future__ import annotations

import pytest

from sessions_mgmt.models import Session
from sessions_mgmt.services import session_revoke, sessions_revoke_all

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/auth/sessions"


def test_access_token_works_for_a_live_session(user, start_session, client_for):
    issued = start_session(user)
    response = client_for(issued).get(SESSIONS)
    assert response.status_code == 200
    assert [s["id"] for s in response.json()] == [str(issued.session.id)]


def test_revoking_a_session_kills_its_access_token_on_the_next_request(user, start_session, client_for):
    issued = start_session(user)
    client = client_for(issued)
    assert client.get(SESSIONS).status_code == 200  # warms the revocation cache

    assert session_revoke(session=issued.session, reason="test") is True

    response = client.get(SESSIONS)
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "SESSION_REVOKED"


def test_session_revoke_is_idempotent(user, start_session):
    issued = start_session(user)
    assert session_revoke(session=issued.session, reason="test") is True
    assert session_revoke(session=issued.session, reason="test") is False
    assert Session.objects.get(pk=issued.session.pk).revoke_reason == "test"


@pytest.mark.slow
def test_revoke_all_keeps_only_the_named_session(user, start_session, client_for):
    keep, other1, other2 = start_session(user), start_session(user), start_session(user)
    for issued in (keep, other1, other2):
        assert client_for(issued).get(SESSIONS).status_code == 200

    assert sessions_revoke_all(user=user, reason="password_changed", keep_session_id=keep.session.id) == 2
    assert sessions_revoke_all(user=user, reason="password_changed", keep_session_id=keep.session.id) == 0

    assert client_for(keep).get(SESSIONS).status_code == 200
    assert client_for(other1).get(SESSIONS).json()["code"] == "SESSION_REVOKED"
    assert client_for(other2).get(SESSIONS).status_code == 401


def test_garbage_and_foreign_tokens_are_token_invalid(user, start_session, api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    response = api_client.get(SESSIONS)
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_INVALID"


def test_a_verified_access_token_still_expires_on_time(user, start_session, client_for, monkeypatch, settings):
    """The process remembers tokens it verified, but checks their expiry on every use."""
    from datetime import timedelta

    from sessions_mgmt import tokens

    issued = start_session(user)
    client = client_for(issued)
    assert client.get(SESSIONS).status_code == 200  # verified once, remembered

    later = tokens.aware_utcnow() + timedelta(seconds=settings.ACCESS_TOKEN_LIFETIME + 6)  # past the leeway
    monkeypatch.setattr(tokens, "aware_utcnow", lambda: later)
    response = client.get(SESSIONS)
    assert (response.status_code, response.json()["code"]) == (401, "TOKEN_INVALID")


def test_a_tampered_copy_of_a_verified_token_is_refused(user, start_session, client_for, api_client):
    issued = start_session(user)
    assert client_for(issued).get(SESSIONS).status_code == 200  # the genuine token is remembered
    header, payload, signature = issued.access.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for forged in (f"{header}.{payload}.{flipped}", f"{header}.{payload}.", issued.access + "x", "x" * 5000):
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
        response = api_client.get(SESSIONS)
        assert (response.status_code, response.json()["code"]) == (401, "TOKEN_INVALID"), forged[-8:]


def test_refresh_token_is_not_accepted_as_an_access_token(user, start_session, api_client):
    issued = start_session(user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.refresh}")
    assert api_client.get(SESSIONS).json()["code"] == "TOKEN_INVALID"


def test_inactive_user_is_refused(user, start_session, client_for):
    issued = start_session(user)
    client = client_for(issued)
    assert client.get(SESSIONS).status_code == 200
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert client.get(SESSIONS).status_code == 401


def test_a_session_saved_outside_the_services_is_reread(user, start_session, client_for):
    from datetime import timedelta

    from django.utils import timezone

    issued = start_session(user)
    client = client_for(issued)
    assert client.get(SESSIONS).status_code == 200  # cached as active
    session = Session.objects.get(pk=issued.session.pk)
    session.expires_at = timezone.now() - timedelta(seconds=1)
    session.save(update_fields=["expires_at"])
    assert client.get(SESSIONS).status_code == 401


def test_a_request_racing_a_revocation_cannot_cache_the_session_as_active(
    user, start_session, client_for, monkeypatch, django_capture_on_commit_callbacks,
):
    """A request that read the session before the revocation committed writes its answer to the
    cache after the revocation was pinned there: the pin must win, or the revoked session's
    access token would keep working for REVOCATION_CACHE_SECONDS."""
    from sessions_mgmt import revocation

    issued = start_session(user)
    client = client_for(issued)
    real_fill = revocation.fill
    raced = []

    def fill_after_the_revocation(**kwargs):
        if not raced:
            raced.append(True)
            with django_capture_on_commit_callbacks(execute=True):
                assert session_revoke(session=issued.session, reason="test") is True
        return real_fill(**kwargs)

    monkeypatch.setattr(revocation, "fill", fill_after_the_revocation)
    client.get(SESSIONS)  # read the live session from the database; the revocation lands meanwhile
    assert raced

    response = client.get(SESSIONS)
    assert response.status_code == 401
    assert response.json()["code"] == "SESSION_REVOKED"


def test_a_request_racing_a_deactivation_cannot_cache_the_user_as_active(
    user, start_session, client_for, monkeypatch, django_capture_on_commit_callbacks,
):
    """Same race for the user row: a request that read the user before the deactivation
    committed must not leave the active user in the cache for REVOCATION_CACHE_SECONDS."""
    from accounts.services import user_deactivate
    from sessions_mgmt import revocation

    issued = start_session(user)
    client = client_for(issued)
    assert client.get(SESSIONS).status_code == 200  # the session state is cached
    revocation.user_changed(user_id=user.pk)  # forget the user row only (a profile save)
    real_fill = revocation.fill
    raced = []

    def fill_after_the_deactivation(**kwargs):
        if not raced and kwargs.get("user") is not None:
            raced.append(True)
            with django_capture_on_commit_callbacks(execute=True):
                # Another process, with its own copy of the user row.
                assert user_deactivate(user=type(user).objects.get(pk=user.pk), reason="staff") is True
        return real_fill(**kwargs)

    monkeypatch.setattr(revocation, "fill", fill_after_the_deactivation)
    client.get(SESSIONS)
    assert raced
    monkeypatch.undo()

    # Not answered from a cached "active" user: its session was ended, the account is inactive.
    response = client.get(SESSIONS)
    assert response.status_code == 401
    cached = revocation.lookup(session_id=str(issued.session.pk), user_id=str(user.pk)).user
    assert cached is None or not cached.is_active
