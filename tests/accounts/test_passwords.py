"""Password reset and change: single-use tokens, sessions ended, emails sent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone

from accounts.models import AccountToken
from audit.models import AuditEvent
from tests.accounts.conftest import NEW_PASSWORD, login, outbox_to, token_from

pytestmark = pytest.mark.django_db
REQUEST = "/api/v1/auth/request-password-reset"
RESET = "/api/v1/auth/reset-password"
CHANGE = "/api/v1/auth/change-password"
ME = "/api/v1/auth/me"


def bearer(access):
    return {"HTTP_AUTHORIZATION": f"Bearer {access}"}


def request_reset(client, email, capture):
    with capture(execute=True):
        response = client.post(REQUEST, {"email": email}, format="json")
    assert response.status_code == 202
    return token_from(outbox_to(email)[-1])


@pytest.mark.slow
def test_reset_sets_the_password_ends_every_session_and_confirms_by_email(
    api_client, user, password, django_capture_on_commit_callbacks,
):
    access = login(api_client, user.email, password).json()["access"]
    assert api_client.get(ME, **bearer(access)).status_code == 200
    token = request_reset(api_client, user.email, django_capture_on_commit_callbacks)
    message = outbox_to(user.email)[-1]
    assert "Reset" in message.subject and "/reset-password?token=" in message.body
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(RESET, {"token": token, "new_password": NEW_PASSWORD}, format="json")
    assert response.status_code == 200
    assert api_client.get(ME, **bearer(access)).status_code == 401
    assert login(api_client, user.email, password).status_code == 401
    assert login(api_client, user.email, NEW_PASSWORD).status_code == 200
    assert "was reset" in outbox_to(user.email)[-1].subject
    assert AuditEvent.objects.filter(action="auth.password.reset", actor=user).count() == 1


def test_a_reset_token_is_single_use(api_client, user, django_capture_on_commit_callbacks):
    token = request_reset(api_client, user.email, django_capture_on_commit_callbacks)
    assert api_client.post(RESET, {"token": token, "new_password": NEW_PASSWORD}, format="json").status_code == 200
    again = api_client.post(RESET, {"token": token, "new_password": "Third-Password-99!"}, format="json")
    assert (again.status_code, again.json()["code"]) == (400, "INVALID_TOKEN")


def test_a_reset_token_expires_after_15_minutes(api_client, user, django_capture_on_commit_callbacks):
    token = request_reset(api_client, user.email, django_capture_on_commit_callbacks)
    row = AccountToken.objects.get(user=user, purpose="reset_password")
    assert row.expires_at - row.created_at == timedelta(minutes=15)
    AccountToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api_client.post(RESET, {"token": token, "new_password": NEW_PASSWORD}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_TOKEN")


def test_a_new_reset_request_invalidates_the_earlier_link(api_client, user, django_capture_on_commit_callbacks):
    first = request_reset(api_client, user.email, django_capture_on_commit_callbacks)
    second = request_reset(api_client, user.email, django_capture_on_commit_callbacks)
    assert api_client.post(RESET, {"token": first, "new_password": NEW_PASSWORD}, format="json").status_code == 400
    assert api_client.post(RESET, {"token": second, "new_password": NEW_PASSWORD}, format="json").status_code == 200


def test_a_weak_new_password_keeps_the_token_usable(api_client, user, django_capture_on_commit_callbacks):
    token = request_reset(api_client, user.email, django_capture_on_commit_callbacks)
    weak = api_client.post(RESET, {"token": token, "new_password": "short"}, format="json")
    assert weak.status_code == 400
    assert weak.json()["code"] == "VALIDATION_ERROR" and "new_password" in weak.json()["errors"]
    assert api_client.post(RESET, {"token": token, "new_password": NEW_PASSWORD}, format="json").status_code == 200


@pytest.mark.slow
def test_a_reset_clears_the_lockout(api_client, user, django_capture_on_commit_callbacks):
    for _ in range(10):
        login(api_client, user.email, "Wrong-Password-1!")
    assert login(api_client, user.email, "Wrong-Password-1!").status_code == 429
    token = request_reset(api_client, user.email, django_capture_on_commit_callbacks)
    assert api_client.post(RESET, {"token": token, "new_password": NEW_PASSWORD}, format="json").status_code == 200
    assert not AccessAttempt.objects.filter(username=user.email).exists()
    assert login(api_client, user.email, NEW_PASSWORD).status_code == 200


def test_reset_request_for_an_unknown_address_sends_nothing(api_client, django_capture_on_commit_callbacks):
    from django.core import mail

    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.post(REQUEST, {"email": "ghost@example.com"}, format="json").status_code == 202
    assert mail.outbox == []


@pytest.mark.slow
def test_change_password_keeps_this_session_and_ends_the_others(
    api_client, user, password, django_capture_on_commit_callbacks,
):
    mine = login(api_client, user.email, password).json()["access"]
    other = login(api_client, user.email, password).json()["access"]
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(CHANGE, {"current_password": password, "new_password": NEW_PASSWORD},
                                   format="json", **bearer(mine))
    assert response.status_code == 200
    assert api_client.get(ME, **bearer(mine)).status_code == 200
    assert api_client.get(ME, **bearer(other)).status_code == 401
    assert login(api_client, user.email, NEW_PASSWORD).status_code == 200
    assert "changed" in outbox_to(user.email)[-1].subject
    assert AuditEvent.objects.filter(action="auth.password.changed", actor=user).count() == 1


@pytest.mark.slow
def test_change_password_needs_the_current_password(api_client, user, password):
    access = login(api_client, user.email, password).json()["access"]
    response = api_client.post(CHANGE, {"current_password": "Not-The-One-1!", "new_password": NEW_PASSWORD},
                               format="json", **bearer(access))
    assert response.status_code == 400
    assert "current_password" in response.json()["errors"]
    assert login(api_client, user.email, password).status_code == 200


def test_change_password_enforces_the_policy(api_client, user, password):
    access = login(api_client, user.email, password).json()["access"]
    response = api_client.post(CHANGE, {"current_password": password, "new_password": "alllowercase"},
                               format="json", **bearer(access))
    assert response.status_code == 400
    assert len(response.json()["errors"]["new_password"]) >= 3


def test_change_password_needs_authentication(api_client):
    response = api_client.post(CHANGE, {"current_password": "x", "new_password": "y"}, format="json")
    assert (response.status_code, response.json()["code"]) == (401, "NOT_AUTHENTICATED")


def test_cleanup_deletes_tokens_expired_for_a_week_only(user):
    from accounts.services import account_tokens_cleanup
    from accounts.tasks import cleanup_account_tokens
    from accounts.tokens import account_token_issue

    account_token_issue(user=user, purpose="reset_password")
    account_token_issue(user=user, purpose="verify_email")
    AccountToken.objects.filter(purpose="reset_password").update(expires_at=timezone.now() - timedelta(days=8))
    assert cleanup_account_tokens.delay().get() == 1
    assert account_tokens_cleanup() == 0
    assert list(AccountToken.objects.values_list("purpose", flat=True)) == ["verify_email"]


@pytest.mark.parametrize("method,path,field", [
    ("post", CHANGE, "current_password"),
    ("delete", ME, "password"),
    ("patch", ME, "current_password"),
])
@pytest.mark.slow
def test_guessing_the_current_password_with_a_stolen_access_token_locks_the_account(
    api_client, user, password, settings, method, path, field,
):
    """The re-checks of the password count toward the lockout, like logins."""
    settings.LOCKOUT_FAILURE_LIMIT = 3
    access = login(api_client, user.email, password).json()["access"]

    def attempt(guess):
        body = {field: guess}
        if path == CHANGE:
            body["new_password"] = NEW_PASSWORD
        if method == "patch":
            body["email"] = "elsewhere@example.com"
        return getattr(api_client, method)(path, body, format="json", **bearer(access))

    assert attempt("Guess-Number-1!").status_code == 400
    assert attempt("Guess-Number-2!").status_code == 400
    locked = attempt("Guess-Number-3!")
    assert locked.status_code == 429
    assert locked.json()["code"] == "ACCOUNT_LOCKED" and int(locked["Retry-After"]) > 0
    # Locked: even the right password is refused, here and at login.
    assert attempt(password).json()["code"] == "ACCOUNT_LOCKED"
    assert login(api_client, user.email, password).json()["code"] == "ACCOUNT_LOCKED"
    user.refresh_from_db()
    assert user.is_active and user.check_password(password)
    assert AccessAttempt.objects.filter(username=user.email).exists()


def test_a_reset_token_used_by_a_concurrent_request_meanwhile_is_refused(
    api_client, user, monkeypatch, django_capture_on_commit_callbacks,
):
    """The use is a compare-and-swap: a request that read the token before another one used it
    (SQLite ignores the row lock) must not use it a second time."""
    from django.db.models.query import QuerySet

    token = request_reset(api_client, user.email, django_capture_on_commit_callbacks)
    real_first = QuerySet.first

    def first_then_used_elsewhere(self):
        row = real_first(self)
        if isinstance(row, AccountToken) and row.used_at is None:
            AccountToken.objects.filter(pk=row.pk).update(used_at=timezone.now())
        return row

    monkeypatch.setattr(QuerySet, "first", first_then_used_elsewhere)
    response = api_client.post(RESET, {"token": token, "new_password": NEW_PASSWORD}, format="json")
    monkeypatch.undo()
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_TOKEN")
    user.refresh_from_db()
    assert not user.check_password(NEW_PASSWORD)
