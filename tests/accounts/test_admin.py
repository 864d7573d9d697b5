"""The user admin: search, filters, lock status, attempts, actions; never a password form."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.urls import reverse

from accounts.models import User
from audit.models import AuditEvent
from tests.accounts.conftest import login, outbox_to, token_from
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
WRONG = "Wrong-Password-1!"


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def lock(api_client, email):
    for _ in range(10):
        login(api_client, email, WRONG)


@pytest.mark.slow
def test_changelist_searches_and_filters(staff_client, user, api_client):
    other = UserFactory(email="zed@example.com", email_verified_at=None)
    lock(api_client, user.email)
    url = reverse("admin:accounts_user_changelist")
    page = staff_client.get(url, {"q": "zed@"}).content.decode()
    assert other.email in page and user.email not in page
    unverified = staff_client.get(url, {"verified": "no"}).content.decode()
    assert other.email in unverified and user.email not in unverified
    locked = staff_client.get(url, {"locked": "yes"}).content.decode()
    assert user.email in locked and other.email not in locked


@pytest.mark.slow
def test_change_page_shows_lock_and_attempts_but_no_password(staff_client, user, api_client):
    lock(api_client, user.email)
    page = staff_client.get(reverse("admin:accounts_user_change", args=[user.pk])).content.decode()
    assert "Locked for" in page
    assert "10 failure(s)" in page
    assert 'name="password"' not in page and "argon2" not in page
    assert staff_client.get(reverse("admin:accounts_user_add")).status_code == 403


def test_password_cannot_be_set_through_the_admin(staff_client, user):
    url = reverse("admin:accounts_user_change", args=[user.pk])
    staff_client.post(url, {"email": "x@example.com", "first_name": "A", "last_name": "B",
                            "password": "Staff-Chosen-1!", "_save": "Save"})
    user.refresh_from_db()
    assert not user.check_password("Staff-Chosen-1!")
    assert staff_client.get(url + "password/").status_code in (302, 404)


@pytest.mark.slow
def test_unlock_action_clears_the_lock(staff_client, staff_user, user, password, api_client):
    lock(api_client, user.email)
    assert login(api_client, user.email, password).status_code == 429
    staff_client.post(reverse("admin:accounts_user_changelist"),
                      {"action": "unlock_accounts", "_selected_action": [str(user.pk)]})
    assert not AccessAttempt.objects.filter(username=user.email).exists()
    assert login(api_client, user.email, password).status_code == 200
    assert AuditEvent.objects.filter(action="auth.lockout.cleared", actor=staff_user).exists()


def test_send_reset_email_action(staff_client, staff_user, user, api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(reverse("admin:accounts_user_changelist"),
                          {"action": "send_password_reset", "_selected_action": [str(user.pk)]})
    token = token_from(outbox_to(user.email)[-1])
    response = api_client.post("/api/v1/auth/reset-password",
                               {"token": token, "new_password": "Brand-New-Pass-42"}, format="json")
    assert response.status_code == 200
    assert AuditEvent.objects.filter(action="auth.password.reset_requested", actor=staff_user).exists()


def test_deactivate_action(staff_client, user, password, api_client):
    staff_client.post(reverse("admin:accounts_user_changelist"),
                      {"action": "deactivate_accounts", "_selected_action": [str(user.pk)]})
    assert not User.objects.get(pk=user.pk).is_active
    assert login(api_client, user.email, password).status_code == 401


@pytest.mark.slow
def test_changelist_query_count_does_not_grow_with_users(staff_client, django_assert_max_num_queries):
    url = reverse("admin:accounts_user_changelist")
    UserFactory.create_batch(3)
    with django_assert_max_num_queries(12) as few:
        staff_client.get(url)
    UserFactory.create_batch(30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert staff_client.get(url).status_code == 200


@pytest.mark.slow
def test_demo_data_is_idempotent_and_unlocks_the_demo_user(api_client, capsys):
    from django.core.management import call_command

    call_command("load_demo_data")
    for _ in range(10):
        login(api_client, "demo@dashtam.local", WRONG)
    assert login(api_client, "demo@dashtam.local", "Demo-Passw0rd!").status_code == 429
    call_command("load_demo_data")
    assert User.objects.filter(email__in=["demo@dashtam.local", "staff@dashtam.local"]).count() == 2
    assert login(api_client, "demo@dashtam.local", "Demo-Passw0rd!").status_code == 200
    assert "Staff-Passw0rd!" in capsys.readouterr().out


def test_a_staff_change_to_a_users_permissions_is_audited(staff_client, staff_user, user):
    url = reverse("admin:accounts_user_change", args=[user.pk])
    response = staff_client.post(url, {"first_name": user.first_name, "last_name": user.last_name,
                                       "is_staff": "on", "is_superuser": "on", "_save": "Save"})
    assert response.status_code == 302, response.content[:500]
    user.refresh_from_db()
    assert user.is_staff and user.is_superuser
    event = AuditEvent.objects.get(action="admin.action", extra__action="user.change")
    assert event.actor_id == staff_user.pk
    assert event.target_id == str(user.pk)
    assert event.extra["fields"] == ["is_staff", "is_superuser"]


def test_staff_who_are_not_superusers_cannot_grant_themselves_privileges(client):
    from django.contrib.auth.models import Permission

    helper = UserFactory(is_staff=True, is_superuser=False)
    helper.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    client.force_login(helper)
    url = reverse("admin:accounts_user_change", args=[helper.pk])
    every_permission = list(Permission.objects.values_list("pk", flat=True))
    client.post(url, {"first_name": "Eve", "last_name": "", "is_staff": "on", "is_superuser": "on",
                      "user_permissions": every_permission, "_save": "Save"})
    helper.refresh_from_db()
    assert helper.first_name == "Eve"  # the names stay editable
    assert not helper.is_superuser
    assert helper.user_permissions.count() == 2
