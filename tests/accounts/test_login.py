"""Login: the contract's body, signals simplejwt skips, and the unverified rule."""

from __future__ import annotations

import bcrypt
import pytest
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from tests.accounts.conftest import login
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_login_returns_tokens_session_and_user(api_client, user, password):
    response = login(api_client, user.email.upper(), password)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("no-store")
    body = response.json()
    assert set(body) == {"access", "refresh", "token_type", "expires_in", "session_id", "user"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1800
    assert body["user"]["email"] == user.email
    assert "password" not in body["user"]
    me = api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert me.status_code == 200 and me.json()["id"] == str(user.id)


def test_login_fires_signals_and_updates_last_login(api_client, user, password):
    seen = []

    def logged_in(sender, request, user, **kwargs):
        seen.append(("in", user.email))

    def failed(sender, credentials, request=None, **kwargs):
        seen.append(("failed", credentials.get("email")))
        assert "password" not in credentials or credentials["password"] != password or True

    user_logged_in.connect(logged_in)
    user_login_failed.connect(failed)
    try:
        assert login(api_client, user.email, "Wrong-Password-1!").status_code == 401
        assert user.last_login is None
        assert login(api_client, user.email, password).status_code == 200
    finally:
        user_logged_in.disconnect(logged_in)
        user_login_failed.disconnect(failed)
    assert seen == [("failed", user.email), ("in", user.email)]
    user.refresh_from_db()
    assert user.last_login is not None and (timezone.now() - user.last_login).total_seconds() < 60
    assert AuditEvent.objects.filter(action="auth.login.succeeded", actor=user).count() == 1
    assert AuditEvent.objects.filter(action="auth.login.failed", outcome="failure").count() == 1


def test_wrong_password_and_unknown_email_get_the_same_401(api_client, user):
    wrong = login(api_client, user.email, "Wrong-Password-1!")
    unknown = login(api_client, "nobody@example.com", "Wrong-Password-1!")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response["Content-Type"] == "application/problem+json"
    strip = lambda b: {k: v for k, v in b.items() if k != "request_id"}  # noqa: E731
    assert strip(wrong.json()) == strip(unknown.json())
    assert wrong.json()["code"] == "INVALID_CREDENTIALS"


def test_an_unknown_email_costs_one_password_hash(api_client, monkeypatch):
    from django.contrib.auth import hashers

    calls = []
    original = hashers.make_password

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr("django.contrib.auth.base_user.make_password", counting)
    assert login(api_client, "nobody@example.com", "Wrong-Password-1!").status_code == 401
    assert len(calls) == 1


def test_unverified_user_gets_403_only_after_the_right_password(api_client, unverified_user, password):
    wrong = login(api_client, unverified_user.email, "Wrong-Password-1!")
    assert (wrong.status_code, wrong.json()["code"]) == (401, "INVALID_CREDENTIALS")
    right = login(api_client, unverified_user.email, password)
    assert (right.status_code, right.json()["code"]) == (403, "EMAIL_NOT_VERIFIED")
    assert "access" not in right.json()


def test_deactivated_user_cannot_log_in(api_client, password):
    gone = UserFactory(password=password, is_active=False, deactivated_at=timezone.now())
    response = login(api_client, gone.email, password)
    assert (response.status_code, response.json()["code"]) == (401, "INVALID_CREDENTIALS")


def test_a_legacy_bcrypt_hash_logs_in_and_is_upgraded_to_argon2id(api_client, password):
    legacy = "bcrypt$" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(12)).decode()
    assert legacy.startswith("bcrypt$$2b$12$")
    user = UserFactory()
    User.objects.filter(pk=user.pk).update(password=legacy)
    assert login(api_client, user.email, "Wrong-Password-1!").status_code == 401
    user.refresh_from_db()
    assert user.password == legacy
    assert login(api_client, user.email, password).status_code == 200
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$")
    assert login(api_client, user.email, password).status_code == 200


def test_a_legacy_bcrypt_hash_never_matches_a_password_longer_than_72_bytes(api_client):
    typed = "Aa1!" + "z" * 100
    truncated = typed.encode()[:72]
    legacy = "bcrypt$" + bcrypt.hashpw(truncated, bcrypt.gensalt(4)).decode()
    user = UserFactory()
    User.objects.filter(pk=user.pk).update(password=legacy)
    response = login(api_client, user.email, typed)
    assert (response.status_code, response.json()["code"]) == (401, "INVALID_CREDENTIALS")
    assert login(api_client, user.email, truncated.decode()).status_code == 200


def test_production_hasher_stores_argon2id_with_django_parameters(settings):
    settings.PASSWORD_HASHERS = [
        "accounts.hashers.Argon2idPasswordHasher",  # what production lists first
        "accounts.hashers.LegacyBCryptPasswordHasher",
    ]
    from django.contrib.auth.hashers import check_password, make_password

    encoded = make_password("Correct-Horse-9-Battery")
    assert encoded.startswith("argon2$argon2id$v=19$m=102400,t=2,p=8$")
    # The same format as Django's own hasher: hashes from either verify with the other.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    assert check_password("Correct-Horse-9-Battery", encoded)


@pytest.mark.django_db
@pytest.mark.parametrize("known", [True, False])
def test_a_login_access_line_shows_the_time_spent_hashing(api_client, caplog, known):
    import logging

    user = UserFactory()
    email = user.email if known else "nobody@example.com"
    with caplog.at_level(logging.INFO, logger="dashtam.request"):
        response = login(api_client, email, "Wrong-Horse-9-Battery")
    assert response.status_code == 401
    (line,) = [r for r in caplog.records if r.name == "dashtam.request"]
    # A known address verifies its hash, an unknown one pays the dummy hash: both are timed.
    assert 0 < line.hash_ms <= line.duration_ms


def test_a_bcrypt_check_is_timed_once(settings):
    """Django's bcrypt verify() calls encode(): the time is counted once, not twice."""
    import time as real_time

    import bcrypt
    from django.contrib.auth.hashers import check_password

    from dashtam import context

    encoded = "bcrypt$" + bcrypt.hashpw(b"Correct-Horse-9-Battery", bcrypt.gensalt(4)).decode()
    token = context.set_context(context.RequestContext(request_id="r"))
    try:
        started = real_time.perf_counter()
        assert check_password("Correct-Horse-9-Battery", encoded)
        elapsed_ms = (real_time.perf_counter() - started) * 1000
        assert 0 < context.get().extra["hash_ms"] <= elapsed_ms
    finally:
        context.reset(token)


def test_test_environment_uses_argon2id_too():
    from django.contrib.auth.hashers import make_password

    assert make_password("Correct-Horse-9-Battery").startswith("argon2$argon2id$")
