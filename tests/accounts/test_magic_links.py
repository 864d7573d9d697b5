"""Magic links: a single-use emailed token signs the user in, as a password would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AccountToken
from accounts.tokens import token_hash
from audit.models import AuditEvent
from tests.accounts.conftest import login, outbox_to, token_from
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
REQUEST = "/api/v1/auth/magic-link"
VERIFY = "/api/v1/auth/magic-link/verify"


def request_link(client, email, capture, **extra):
    with capture(execute=True):
        response = client.post(REQUEST, {"email": email}, format="json", **extra)
    assert response.status_code == 202
    return response


def link_token(email) -> str:
    return token_from(outbox_to(email)[-1])


def use(client, token, **extra):
    return client.post(VERIFY, {"token": token}, format="json", **extra)


def test_a_known_address_gets_a_link_that_signs_in(api_client, user, settings, django_capture_on_commit_callbacks):
    settings.FRONTEND_URL = "https://app.example.com/account"
    request_link(api_client, user.email, django_capture_on_commit_callbacks, REMOTE_ADDR="203.0.113.5")
    message = outbox_to(user.email)[-1]
    assert "sign-in link" in message.subject
    assert "https://app.example.com/account/magic-link?token=" in message.body
    token = token_from(message)
    assert len(token) >= 43  # 32 random bytes, base64url
    row = AccountToken.objects.get(user=user, purpose="magic_link")
    assert row.token_hash == token_hash(token) and token not in row.token_hash
    assert row.expires_at - row.created_at == timedelta(minutes=15)

    response = use(api_client, token, REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer" and body["access"] and body["refresh"] and body["session_id"]
    assert body["user"]["email"] == user.email
    assert response["Cache-Control"] == "no-store"
    me = api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert me.status_code == 200
    used = AuditEvent.objects.get(action="auth.magic_link.used")
    assert str(used.ip) == "198.51.100.7" and used.extra["requested_ip"] == "203.0.113.5"
    requested = AuditEvent.objects.get(action="auth.magic_link.requested")
    assert requested.extra["requested_ip"] == "203.0.113.5"
    assert AuditEvent.objects.filter(action="auth.login.succeeded", actor=user).count() == 1


def test_an_unknown_address_gets_the_same_answer_and_no_email(api_client, db, django_capture_on_commit_callbacks):
    known = UserFactory()
    a = request_link(api_client, "nobody@example.com", django_capture_on_commit_callbacks)
    b = request_link(api_client, known.email, django_capture_on_commit_callbacks)
    assert a.json() == b.json()
    assert outbox_to("nobody@example.com") == []
    assert len(outbox_to(known.email)) == 1


def test_the_link_is_single_use(api_client, user, django_capture_on_commit_callbacks):
    request_link(api_client, user.email, django_capture_on_commit_callbacks)
    token = link_token(user.email)
    assert use(api_client, token).status_code == 200
    again = use(api_client, token)
    assert (again.status_code, again.json()["code"]) == (400, "INVALID_TOKEN")
    assert AuditEvent.objects.filter(action="auth.magic_link.failed").count() == 1


def test_the_link_expires(api_client, user, django_capture_on_commit_callbacks):
    request_link(api_client, user.email, django_capture_on_commit_callbacks)
    AccountToken.objects.filter(user=user, purpose="magic_link").update(
        expires_at=timezone.now() - timedelta(seconds=1))
    response = use(api_client, link_token(user.email))
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_TOKEN")


def test_a_newer_link_kills_the_older_one(api_client, user, django_capture_on_commit_callbacks):
    request_link(api_client, user.email, django_capture_on_commit_callbacks)
    first = link_token(user.email)
    request_link(api_client, user.email, django_capture_on_commit_callbacks)
    second = link_token(user.email)
    assert use(api_client, first).status_code == 400
    assert use(api_client, second).status_code == 200


def test_the_link_verifies_an_unverified_address(api_client, unverified_user, password,
                                                 django_capture_on_commit_callbacks):
    assert login(api_client, unverified_user.email, password).status_code == 403
    request_link(api_client, unverified_user.email, django_capture_on_commit_callbacks)
    assert use(api_client, link_token(unverified_user.email)).status_code == 200
    unverified_user.refresh_from_db()
    assert unverified_user.email_verified_at is not None
    assert login(api_client, unverified_user.email, password).status_code == 200


@pytest.mark.slow
def test_a_locked_account_is_refused_and_the_link_stays_unused(api_client, user, password, settings,
                                                               django_capture_on_commit_callbacks):
    settings.LOCKOUT_FAILURE_LIMIT = 3
    for _ in range(3):
        login(api_client, user.email, "Wrong-Password-123")
    request_link(api_client, user.email, django_capture_on_commit_callbacks)
    response = use(api_client, link_token(user.email))
    assert (response.status_code, response.json()["code"]) == (429, "ACCOUNT_LOCKED")
    assert int(response["Retry-After"]) >= 1
    assert "access" not in response.json()
    assert AccountToken.objects.get(user=user, purpose="magic_link").used_at is None
    assert AuditEvent.objects.filter(action="auth.magic_link.failed", outcome="denied").count() == 1


def test_a_deactivated_account_gets_no_link(api_client, user, django_capture_on_commit_callbacks):
    user.is_active = False
    user.save(update_fields=["is_active"])
    request_link(api_client, user.email, django_capture_on_commit_callbacks)
    assert outbox_to(user.email) == []


def test_bad_tokens_are_400_never_500(api_client, db):
    for bad in ["", "x" * 500, 12, None, ["a"]]:
        response = api_client.post(VERIFY, {"token": bad}, format="json")
        assert response.status_code == 400, bad
        assert response["Content-Type"].startswith("application/problem+json")


def test_disabled_magic_links_are_not_found(api_client, user, settings):
    settings.MAGIC_LINK_ENABLED = False
    assert api_client.post(REQUEST, {"email": user.email}, format="json").status_code == 404
    assert api_client.post(VERIFY, {"token": "x" * 43}, format="json").status_code == 404
