"""Me: profile, names only, email change with re-verification, deactivation."""

from __future__ import annotations

import pytest

from accounts.models import User
from audit.models import AuditEvent
from tests.accounts.conftest import login, outbox_to, token_from

pytestmark = pytest.mark.django_db
ME = "/api/v1/auth/me"
VERIFY = "/api/v1/auth/verify-email"


def test_get_me_returns_the_profile(auth_client, user):
    body = auth_client.get(ME).json()
    assert body["email"] == user.email and body["first_name"] == "Ada" and body["email_verified"] is True
    assert "password" not in body and "is_staff" not in body


@pytest.mark.parametrize("logged_in", [False, True])
def test_user_serializer_formats_like_drf(user, logged_in):
    """The hand-rolled to_representation gives exactly what DRF's generic one gives."""
    from datetime import timedelta

    from django.utils import timezone
    from rest_framework import serializers

    from accounts.serializers import UserSerializer

    if logged_in:
        user.last_login = timezone.now() - timedelta(microseconds=123457)
    else:
        user.last_login, user.email_verified_at = None, None
    fast = UserSerializer(user).data
    generic = serializers.Serializer.to_representation(UserSerializer(user), user)
    assert dict(fast) == dict(generic)
    assert set(fast) == {"id", "email", "first_name", "last_name", "email_verified",
                         "email_verified_at", "date_joined", "last_login"}
    assert (fast["last_login"] is None) is (not logged_in)


def test_user_serializer_fields_stay_flat_and_read_only():
    """The hand-rolled to_representation outputs every declared field: none may be write-only
    (a password field would leak) or need DRF's nested or dotted sources."""
    from accounts.serializers import UserSerializer

    for name, field in UserSerializer._declared_fields.items():
        assert field.read_only and not field.write_only, name
        assert "." not in (field.source or name) and (field.source or name) != "*", name


def test_me_needs_authentication(api_client):
    response = api_client.get(ME)
    assert (response.status_code, response.json()["code"]) == (401, "NOT_AUTHENTICATED")


def test_patch_changes_names(auth_client, user):
    response = auth_client.patch(ME, {"first_name": "Grace", "last_name": "Hopper"}, format="json")
    assert response.status_code == 200
    assert response.json()["first_name"] == "Grace"
    user.refresh_from_db()
    assert (user.first_name, user.last_name) == ("Grace", "Hopper")
    assert AuditEvent.objects.filter(action="auth.profile.updated", actor=user).count() == 1


def test_patch_cannot_set_staff_or_other_fields(auth_client, user):
    response = auth_client.patch(ME, {
        "is_staff": True, "is_superuser": True, "is_active": False, "email_verified_at": None,
        "id": "00000000-0000-0000-0000-000000000000", "min_token_version": 99, "password": "x",
    }, format="json")
    assert response.status_code == 200
    user.refresh_from_db()
    assert not user.is_staff and not user.is_superuser and user.is_active and user.is_verified
    assert user.min_token_version == 0 and str(user.id) == response.json()["id"]
    assert user.check_password("Correct-Horse-9-Battery")


def test_email_change_needs_the_current_password(auth_client, user):
    missing = auth_client.patch(ME, {"email": "new@example.com"}, format="json")
    assert missing.status_code == 400 and "current_password" in missing.json()["errors"]
    wrong = auth_client.patch(ME, {"email": "new@example.com", "current_password": "Nope-Nope-1!"}, format="json")
    assert wrong.status_code == 400 and "current_password" in wrong.json()["errors"]
    user.refresh_from_db()
    assert user.email != "new@example.com"


def test_email_change_takes_effect_when_the_new_address_is_verified(
    auth_client, user, password, django_capture_on_commit_callbacks,
):
    old = user.email
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.patch(ME, {"email": "New@Example.com", "current_password": password}, format="json")
    assert response.status_code == 200
    assert response.json()["email"] == old
    token = token_from(outbox_to("new@example.com")[0])
    with django_capture_on_commit_callbacks(execute=True):
        assert auth_client.post(VERIFY, {"token": token}, format="json").status_code == 200
    user.refresh_from_db()
    assert user.email == "new@example.com"
    assert "changed" in outbox_to(old)[-1].subject
    assert login(auth_client, "new@example.com", password).status_code == 200
    assert login(auth_client, old, password).status_code == 401


def test_email_change_to_a_taken_address_sends_no_link(
    auth_client, user, password, staff_user, django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.patch(ME, {"email": staff_user.email, "current_password": password}, format="json")
    assert response.status_code == 200
    [notice] = outbox_to(staff_user.email)
    assert "token=" not in notice.body and "move another Dashtam account" in notice.body
    user.refresh_from_db()
    assert user.email != staff_user.email


def test_delete_me_deactivates_the_account(auth_client, user, password, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.delete(ME, {"password": password}, format="json")
    assert response.status_code == 204
    user.refresh_from_db()
    assert not user.is_active and user.deactivated_at is not None
    assert auth_client.get(ME).status_code == 401
    assert login(auth_client, user.email, password).status_code == 401
    assert AuditEvent.objects.filter(action="auth.account.deactivated", actor=user).count() == 1
    assert AuditEvent.objects.filter(actor=user).count() > 1
    assert "deactivated" in outbox_to(user.email)[-1].subject


def test_delete_me_needs_the_password(auth_client, user):
    response = auth_client.delete(ME, {"password": "Wrong-Password-1!"}, format="json")
    assert response.status_code == 400 and "password" in response.json()["errors"]
    assert User.objects.get(pk=user.pk).is_active


def test_deactivation_revokes_provider_connections(auth_client, user, password, monkeypatch):
    calls = []
    monkeypatch.setattr("providers.services.connections_revoke_for_user",
                        lambda *, user, reason: calls.append((user.pk, reason)) or 0)
    assert auth_client.delete(ME, {"password": password}, format="json").status_code == 204
    assert calls == [(user.pk, "account_deactivated")]


@pytest.mark.parametrize("how", ["reset", "change"])
@pytest.mark.slow
def test_a_new_password_kills_pending_email_changes(
    auth_client, api_client, user, password, how, django_capture_on_commit_callbacks,
):
    """Whoever started an email change with the old password must not take the account over later."""
    from accounts.services import password_change, password_reset_request
    from tests.accounts.conftest import NEW_PASSWORD

    with django_capture_on_commit_callbacks(execute=True):
        auth_client.patch(ME, {"email": "attacker@example.com", "current_password": password}, format="json")
    change_token = token_from(outbox_to("attacker@example.com")[0])
    if how == "reset":
        with django_capture_on_commit_callbacks(execute=True):
            password_reset_request(email=user.email)
        reset_token = token_from(outbox_to(user.email)[-1])
        response = api_client.post("/api/v1/auth/reset-password",
                                   {"token": reset_token, "new_password": NEW_PASSWORD}, format="json")
        assert response.status_code == 200
    else:
        password_change(user=user, current_password=password, new_password=NEW_PASSWORD)

    response = api_client.post(VERIFY, {"token": change_token}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "INVALID_TOKEN"
    user.refresh_from_db()
    assert user.email != "attacker@example.com"


def test_a_confirmed_email_change_kills_reset_links_sent_to_the_old_address(
    auth_client, api_client, user, password, django_capture_on_commit_callbacks,
):
    from accounts.services import password_reset_request
    from tests.accounts.conftest import NEW_PASSWORD

    old = user.email
    with django_capture_on_commit_callbacks(execute=True):
        password_reset_request(email=old)
        auth_client.patch(ME, {"email": "moved@example.com", "current_password": password}, format="json")
    reset_token = token_from(outbox_to(old)[-1])
    with django_capture_on_commit_callbacks(execute=True):
        change = api_client.post(VERIFY, {"token": token_from(outbox_to("moved@example.com")[0])}, format="json")
    assert change.status_code == 200

    response = api_client.post("/api/v1/auth/reset-password",
                               {"token": reset_token, "new_password": NEW_PASSWORD}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "INVALID_TOKEN"
    user.refresh_from_db()
    assert user.check_password(password)
