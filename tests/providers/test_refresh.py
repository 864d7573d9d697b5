"""Token refresh against the fake Schwab: rotation types, invalid_grant, failures, tampering."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from dashtam import crypto
from providers.models import ConnectionStatus, ProviderConnection, ProviderToken
from providers.services import token_refresh
from tests.providers.conftest import connected

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


@pytest.fixture
def connection_id(user, schwab):
    connection_id = connected(schwab, user)
    # Obtained an hour ago, so a user's forced refresh calls the provider (a token obtained
    # moments ago is answered from the stored state: tests/providers/test_fair_use.py).
    ProviderConnection.objects.filter(pk=connection_id).update(last_refreshed_at=timezone.now() - timedelta(hours=1))
    return connection_id


def _refresh_plain(connection_id) -> str:
    token = ProviderToken.objects.get(connection_id=connection_id)
    return crypto.decrypt(token.refresh_token_encrypted, aad=f"providers.ProviderToken:{token.pk}:refresh")


def _access_plain(connection_id) -> str:
    token = ProviderToken.objects.get(connection_id=connection_id)
    return crypto.decrypt(token.access_token_encrypted, aad=f"providers.ProviderToken:{token.pk}:access")


@pytest.mark.parametrize(("mode", "rotation"), [
    ("rotate", "rotated"), ("same", "same_token_returned"), ("omit", "not_included")])
def test_refresh_reports_and_audits_the_rotation_type(auth_client, schwab, connection_id, mode, rotation):
    before = _refresh_plain(connection_id)
    schwab.token_script = [mode]
    response = auth_client.post(f"/api/v1/providers/{connection_id}/token-refresh")
    assert response.status_code == 200, response.content
    assert response.json()["rotation"] == rotation
    assert response.json()["status"] == "active"
    after = _refresh_plain(connection_id)
    assert (after != before) if mode == "rotate" else (after == before)  # omitted -> the old one is kept
    assert _access_plain(connection_id) == schwab.issued[-1]["access_token"]
    token = ProviderToken.objects.get(connection_id=connection_id)
    assert token.refresh_count == 1 and token.token_version == 2
    event = AuditEvent.objects.get(action="provider.token.refreshed", target_id=connection_id)
    assert event.extra["rotation"] == rotation


def test_a_fresh_token_is_not_refreshed_again_by_the_scheduler(schwab, connection_id):
    assert token_refresh(connection_id=connection_id).status == "not_due"
    ProviderToken.objects.update(expires_at=timezone.now() + timedelta(minutes=2))
    assert token_refresh(connection_id=connection_id).status == "refreshed"
    assert token_refresh(connection_id=connection_id).status == "not_due"
    assert schwab.refresh_calls() == 1


def test_invalid_grant_requires_reauthorization_and_emails_the_user(
        auth_client, schwab, connection_id, user, django_capture_on_commit_callbacks):
    schwab.token_script = ["invalid_grant"]
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post(f"/api/v1/providers/{connection_id}/token-refresh")
    assert response.status_code == 409 and response.json()["code"] == "REAUTH_REQUIRED"
    connection = ProviderConnection.objects.get(pk=connection_id)
    assert connection.status == ConnectionStatus.REAUTH_REQUIRED
    assert connection.last_error_code == "invalid_grant"
    assert AuditEvent.objects.filter(action="provider.token.reauth_required", target_id=connection_id).exists()
    assert [m.to for m in mail.outbox] == [[user.email]]
    assert "Reconnect" in mail.outbox[0].subject
    assert f"/connections/{connection_id}" in mail.outbox[0].body


def test_three_consecutive_failures_put_the_connection_in_error_and_email_once(
        schwab, connection_id, user, django_capture_on_commit_callbacks):
    ProviderToken.objects.update(expires_at=timezone.now())
    schwab.token_script = ["500", "500", "500", "500"]
    with django_capture_on_commit_callbacks(execute=True):
        results = [token_refresh(connection_id=connection_id) for _ in range(4)]
    assert [r.status for r in results] == ["failed"] * 4
    assert [r.retryable for r in results] == [True, True, False, False]
    connection = ProviderConnection.objects.get(pk=connection_id)
    assert connection.status == ConnectionStatus.ERROR
    assert connection.consecutive_failures == 4
    assert connection.last_error_code == "server_error"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [user.email]
    assert AuditEvent.objects.filter(action="provider.token.refresh_failed", target_id=connection_id).count() == 4
    # A later success clears the error.
    assert token_refresh(connection_id=connection_id).status == "refreshed"
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.ACTIVE and connection.consecutive_failures == 0


def test_a_slow_token_endpoint_times_out_and_counts_as_a_failure(settings, schwab, connection_id):
    settings.HTTP_TIMEOUT_READ = 0.2
    schwab.token_script = ["hang"]
    ProviderToken.objects.update(expires_at=timezone.now())
    result = token_refresh(connection_id=connection_id)
    assert result.status == "failed" and result.error_code == "timeout"
    assert ProviderConnection.objects.get(pk=connection_id).consecutive_failures == 1


def test_token_endpoint_429_is_not_retried_in_line(schwab, connection_id):
    schwab.token_script = ["429"]
    ProviderToken.objects.update(expires_at=timezone.now())
    result = token_refresh(connection_id=connection_id)
    assert result.status == "failed" and result.retryable
    assert schwab.refresh_calls() == 1


def test_a_tampered_ciphertext_requires_reauthorization_without_crashing(
        auth_client, schwab, connection_id, django_capture_on_commit_callbacks):
    token = ProviderToken.objects.get(connection_id=connection_id)
    kid, body = token.refresh_token_encrypted.split(".", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    ProviderToken.objects.filter(pk=token.pk).update(refresh_token_encrypted=f"{kid}.{flipped}")
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post(f"/api/v1/providers/{connection_id}/token-refresh")
    assert response.status_code == 409 and response.json()["code"] == "REAUTH_REQUIRED"
    connection = ProviderConnection.objects.get(pk=connection_id)
    assert connection.status == ConnectionStatus.REAUTH_REQUIRED
    assert connection.last_error_code == "decrypt_failed"
    assert AuditEvent.objects.filter(action="provider.token.decrypt_failed", target_id=connection_id,
                                     outcome="failure").exists()
    assert schwab.refresh_calls() == 0


def test_a_ciphertext_moved_to_another_row_does_not_decrypt(user, schwab, connection_id):
    other_id = connected(schwab, user, alias="Second")
    mine = ProviderToken.objects.get(connection_id=connection_id)
    ProviderToken.objects.filter(connection_id=other_id).update(refresh_token_encrypted=mine.refresh_token_encrypted)
    result = token_refresh(connection_id=other_id, force=True)
    assert result.status == "reauth_required" and result.error_code == "decrypt_failed"


def test_breach_rotation_refreshes_every_token_of_the_user(
        schwab, connection_id, user, django_capture_on_commit_callbacks):
    from providers.services import provider_tokens_rotate_for_user

    with django_capture_on_commit_callbacks(execute=True):
        assert provider_tokens_rotate_for_user(user=user, reason="password_reset") == 1
    token = ProviderToken.objects.get(connection_id=connection_id)
    assert token.token_version == 2 and token.refresh_count == 1
    assert ProviderConnection.objects.get(pk=connection_id).status == ConnectionStatus.ACTIVE
    assert AuditEvent.objects.filter(action="provider.token.rotation_requested", target_id=connection_id).exists()


def test_breach_rotation_that_cannot_refresh_requires_reauthorization(
        schwab, connection_id, user, django_capture_on_commit_callbacks):
    from providers.services import provider_tokens_rotate_for_user

    schwab.token_script = ["500"]
    with django_capture_on_commit_callbacks(execute=True):
        provider_tokens_rotate_for_user(user=user, reason="password_reset")
    connection = ProviderConnection.objects.get(pk=connection_id)
    assert connection.status == ConnectionStatus.REAUTH_REQUIRED


def test_password_reset_rotates_provider_tokens(api_client, schwab, connection_id, user,
                                                django_capture_on_commit_callbacks):
    from accounts.tokens import account_token_issue

    reset_token = account_token_issue(user=user, purpose="reset_password")
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/v1/auth/reset-password",
                                   {"token": reset_token, "new_password": "Another-Horse-7-Battery"}, format="json")
    assert response.status_code == 200, response.content
    token = ProviderToken.objects.get(connection_id=connection_id)
    assert token.token_version == 2 and schwab.refresh_calls() == 1
    assert AuditEvent.objects.filter(action="provider.token.rotation_requested", target_id=connection_id,
                                     extra__reason__isnull=False).exists()


def test_deactivation_revokes_connections_and_destroys_tokens(
        auth_client, schwab, connection_id, user, password, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.delete("/api/v1/auth/me", {"password": password}, format="json")
    assert response.status_code == 204, response.content
    connection = ProviderConnection.objects.get(pk=connection_id)
    assert connection.status == ConnectionStatus.REVOKED
    assert not ProviderToken.objects.exists()
    assert AuditEvent.objects.filter(action="provider.connection.revoked", target_id=connection_id).exists()


def test_reauth_warning_is_emailed_once_before_the_refresh_token_dies(
        schwab, connection_id, user, settings, django_capture_on_commit_callbacks):
    from providers.services import tokens_reauth_warn

    settings.PROVIDER_REAUTH_WARNING_HOURS = 24
    assert tokens_reauth_warn() == 0
    ProviderToken.objects.update(refresh_expires_at=timezone.now() + timedelta(hours=20))
    with django_capture_on_commit_callbacks(execute=True):
        assert tokens_reauth_warn() == 1
        assert tokens_reauth_warn() == 0
    assert len(mail.outbox) == 1
    assert f"/connections/{connection_id}" in mail.outbox[0].body
    assert AuditEvent.objects.filter(action="provider.token.reauth_warning", target_id=connection_id).exists()
