"""Staff see sessions read-only and revoke them through the same service as the API."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from sessions_mgmt.models import SecurityConfig, Session
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/sessions_mgmt/session/"
SESSIONS = "/api/v1/auth/sessions"


@pytest.fixture
def admin_client(staff_user):
    client = Client()
    client.force_login(staff_user)
    return client


def test_session_admin_lists_and_filters_without_exposing_token_ids(admin_client, user, start_session):
    issued = start_session(user)
    response = admin_client.get(CHANGELIST, {"status": "active", "q": user.email})
    assert response.status_code == 200
    page = response.content.decode()
    assert user.email in page
    assert issued.session.refresh_jti not in page
    other = start_session(UserFactory())
    by_user = admin_client.get(CHANGELIST, {"user": str(user.pk)})
    assert by_user.status_code == 200
    assert str(issued.session.pk) in by_user.content.decode()
    assert str(other.session.pk) not in by_user.content.decode()
    assert admin_client.get(CHANGELIST, {"user": "not-a-uuid"}).status_code == 200
    detail = admin_client.get(f"{CHANGELIST}{issued.session.pk}/change/")
    assert detail.status_code == 200
    assert issued.session.refresh_jti not in detail.content.decode()
    assert issued.refresh not in detail.content.decode()


def test_session_admin_is_read_only(admin_client, user, start_session):
    issued = start_session(user)
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    response = admin_client.post(f"{CHANGELIST}{issued.session.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Session.objects.filter(pk=issued.session.pk).exists()


def test_admin_revoke_action_kills_the_access_token_and_is_audited(
    admin_client, staff_user, user, start_session, client_for
):
    victim, bystander = start_session(user), start_session(user)
    assert client_for(victim).get(SESSIONS).status_code == 200

    response = admin_client.post(
        CHANGELIST, {"action": "revoke_sessions", "_selected_action": [str(victim.session.pk)]}
    )

    assert response.status_code == 302
    assert client_for(victim).get(SESSIONS).json()["code"] == "SESSION_REVOKED"
    assert client_for(bystander).get(SESSIONS).status_code == 200
    revoked = AuditEvent.objects.get(action="session.revoked")
    assert str(revoked.actor_id) == str(staff_user.pk) and revoked.target_id == str(victim.session.pk)
    action = AuditEvent.objects.get(action="admin.action")
    assert action.extra["action"] == "sessions.revoke" and action.extra["count"] == 1


def test_admin_global_breach_rotation(admin_client, start_session, client_for):
    issued = start_session(UserFactory())
    assert client_for(issued).get(SESSIONS).status_code == 200
    SecurityConfig.objects.get_or_create(pk=1)
    response = admin_client.post(
        "/admin/sessions_mgmt/securityconfig/", {"action": "revoke_all_tokens", "_selected_action": ["1"]}
    )
    assert response.status_code == 302
    assert SecurityConfig.objects.get().min_token_version == 1
    assert client_for(issued).get(SESSIONS).status_code == 401
    assert AuditEvent.objects.filter(action="admin.action", extra__action="tokens.revoke_all").exists()


@pytest.mark.slow
def test_session_admin_list_query_count_does_not_grow_with_rows(
    admin_client, start_session, django_assert_max_num_queries
):
    for _ in range(3):
        start_session(UserFactory())
    admin_client.get(CHANGELIST)
    with django_assert_max_num_queries(12) as few:
        admin_client.get(CHANGELIST)
    baseline = len(few.captured_queries)
    for _ in range(20):
        start_session(UserFactory())
    with django_assert_max_num_queries(baseline):
        response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
