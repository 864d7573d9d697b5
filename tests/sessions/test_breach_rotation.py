"""revoke_tokens: every token issued before it stops working, access and refresh alike."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from sessions_mgmt.models import SecurityConfig
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/auth/sessions"
REFRESH = "/api/v1/auth/refresh"


@pytest.mark.slow
def test_revoke_tokens_all_invalidates_every_token_of_every_user(start_session, client_for, api_client):
    users = [UserFactory(), UserFactory()]
    issued = [start_session(u) for u in users for _ in range(2)]
    for i in issued:
        assert client_for(i).get(SESSIONS).status_code == 200  # cached as valid

    call_command("revoke_tokens", "--all", "--reason", "signing key leaked")

    for i in issued:
        response = client_for(i).get(SESSIONS)
        assert response.status_code == 401
        assert response.json()["code"] in ("SESSION_REVOKED", "TOKEN_INVALID")
        assert api_client.post(REFRESH, {"refresh": i.refresh}, format="json").status_code == 401
    assert SecurityConfig.objects.get().min_token_version == 1
    assert AuditEvent.objects.filter(action="session.tokens_revoked", extra__scope="all").count() == 1
    # A new login gets tokens that work.
    fresh = start_session(users[0])
    assert client_for(fresh).get(SESSIONS).status_code == 200
    assert api_client.post(REFRESH, {"refresh": fresh.refresh}, format="json").status_code == 200


def test_global_version_alone_refuses_old_tokens(user, start_session, client_for, api_client):
    """Even a session not marked revoked is refused when its tokens are below the global minimum."""
    from sessions_mgmt import revocation
    from sessions_mgmt.models import Session

    issued = start_session(user)
    client = client_for(issued)
    assert client.get(SESSIONS).status_code == 200
    SecurityConfig.objects.update_or_create(pk=1, defaults={"min_token_version": 5})
    revocation.global_version_changed()
    assert Session.objects.get(pk=issued.session.pk).revoked_at is None
    assert client.get(SESSIONS).status_code == 401
    assert api_client.post(REFRESH, {"refresh": issued.refresh}, format="json").status_code == 401
    # A login after the rotation gets tokens at the new minimum, and they work.
    again = start_session(user)
    assert again.session and client_for(again).get(SESSIONS).status_code == 200
    assert api_client.post(REFRESH, {"refresh": again.refresh}, format="json").status_code == 200


def test_revoke_tokens_for_one_user_spares_the_others(start_session, client_for, api_client):
    victim, bystander = UserFactory(), UserFactory()
    v, b = start_session(victim), start_session(bystander)
    for i in (v, b):
        assert client_for(i).get(SESSIONS).status_code == 200

    call_command("revoke_tokens", "--user", victim.email.upper(), "--reason", "laptop stolen")

    assert client_for(v).get(SESSIONS).status_code == 401
    assert api_client.post(REFRESH, {"refresh": v.refresh}, format="json").status_code == 401
    assert client_for(b).get(SESSIONS).status_code == 200
    victim.refresh_from_db()
    assert victim.min_token_version == 1
    event = AuditEvent.objects.get(action="session.tokens_revoked")
    assert event.target_id == str(victim.pk) and event.extra["reason"] == "laptop stolen"
    again = start_session(victim)
    assert client_for(again).get(SESSIONS).status_code == 200


def test_user_version_bump_outranks_a_higher_global_minimum(user, start_session, client_for):
    from sessions_mgmt.services import tokens_revoke_all, tokens_revoke_for_user

    tokens_revoke_all(reason="one")
    tokens_revoke_all(reason="two")  # global minimum 2, user minimum 0
    issued = start_session(user)  # carries version 2
    assert client_for(issued).get(SESSIONS).status_code == 200
    assert tokens_revoke_for_user(user=user, reason="three") == 3
    assert client_for(issued).get(SESSIONS).status_code == 401


def test_revoke_tokens_needs_a_target_and_a_reason(user):
    with pytest.raises(CommandError):
        call_command("revoke_tokens", "--all", "--reason", " ")
    with pytest.raises(CommandError):
        call_command("revoke_tokens", "--user", "nobody@example.com", "--reason", "x")


def test_a_stale_cached_global_minimum_is_checked_against_the_database(user, start_session, client_for):
    """A minimum bumped in a transaction that rolled back must not lock everyone out."""
    from sessions_mgmt import revocation

    issued = start_session(user)
    client = client_for(issued)
    assert client.get(SESSIONS).status_code == 200
    generation = revocation.lookup(session_id=str(issued.session.pk), user_id=str(user.pk)).generation
    cache.set(revocation.GLOBAL_VERSION_KEY, (generation, 7), timeout=300)  # a stale-high cached minimum
    assert client.get(SESSIONS).status_code == 200


def test_breach_rotation_audits_the_new_minimum_version_in_clear(user):
    """Not under a key the audit scrubber takes for a secret (anything with "token" in it)."""
    from sessions_mgmt.services import tokens_revoke_all, tokens_revoke_for_user

    user_min = tokens_revoke_for_user(user=user, reason="laptop stolen")
    global_min = tokens_revoke_all(reason="key exposure")
    by_scope = {e.extra["scope"]: e.extra for e in AuditEvent.objects.filter(action="session.tokens_revoked")}
    assert by_scope["user"]["min_version"] == user_min
    assert by_scope["all"]["min_version"] == global_min
    assert "[REDACTED]" not in str(by_scope)
