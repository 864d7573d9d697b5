"""Register, verify, resend: enumeration-safe, single-use hashed tokens."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import AccountToken, User
from audit.models import AuditEvent
from tests.accounts.conftest import login, outbox_to, token_from
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
REGISTER = "/api/v1/auth/register"
VERIFY = "/api/v1/auth/verify-email"
RESEND = "/api/v1/auth/resend-verification"


def register(client, email, password="Correct-Horse-9-Battery", **extra):
    return client.post(REGISTER, {"email": email, "password": password, **extra}, format="json")


def test_register_creates_an_unverified_account_and_emails_a_link(
    api_client, django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        response = register(api_client, "  New.Person@Example.COM ", first_name="New")
    assert response.status_code == 202
    user = User.objects.get(email="new.person@example.com")
    assert user.email_verified_at is None
    assert user.password.startswith("argon2$argon2id$")
    [message] = outbox_to("new.person@example.com")
    assert "Verify" in message.subject
    assert "http://" in message.body and "/verify-email?token=" in message.body
    html = message.alternatives[0][0]
    assert "/verify-email?token=" in html
    assert AuditEvent.objects.filter(action="auth.register.requested", actor=user).exists()


def test_registration_token_is_stored_only_as_its_sha256(api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        register(api_client, "hash@example.com")
    token = token_from(outbox_to("hash@example.com")[0])
    row = AccountToken.objects.get(user__email="hash@example.com")
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in row.token_hash
    assert row.expires_at - row.created_at == timedelta(hours=24)


def test_register_with_a_taken_address_answers_the_same_and_sends_a_notice(
    api_client, user, django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        fresh = register(api_client, "someone-new@example.com")
        taken = register(api_client, user.email.upper(), password="Other-Passw0rd!x")
    assert (fresh.status_code, fresh.json()) == (taken.status_code, taken.json()) == (202, fresh.json())
    assert User.objects.filter(email__iexact=user.email).count() == 1
    [notice] = outbox_to(user.email)
    assert "tried to use your email" in notice.subject
    assert "create a Dashtam account" in notice.body
    assert "token=" not in notice.body
    user.refresh_from_db()
    assert user.check_password("Correct-Horse-9-Battery")


def test_verify_marks_the_account_verified_and_allows_login(api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        register(api_client, "verify@example.com")
    assert login(api_client, "verify@example.com", "Correct-Horse-9-Battery").status_code == 403
    token = token_from(outbox_to("verify@example.com")[0])
    response = api_client.post(VERIFY, {"token": token}, format="json")
    assert response.status_code == 200
    assert User.objects.get(email="verify@example.com").is_verified
    assert login(api_client, "verify@example.com", "Correct-Horse-9-Battery").status_code == 200
    assert AuditEvent.objects.filter(action="auth.email.verified").count() == 1


def test_verifying_twice_is_harmless_and_the_second_use_is_refused(
    api_client, django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        register(api_client, "twice@example.com")
    token = token_from(outbox_to("twice@example.com")[0])
    assert api_client.post(VERIFY, {"token": token}, format="json").status_code == 200
    verified_at = User.objects.get(email="twice@example.com").email_verified_at
    again = api_client.post(VERIFY, {"token": token}, format="json")
    assert again.status_code == 400
    assert again.json()["code"] == "INVALID_TOKEN"
    assert User.objects.get(email="twice@example.com").email_verified_at == verified_at


@pytest.mark.parametrize("token", ["nope", "x" * 43, "A" * 129])
def test_verify_with_a_bad_token_is_400_invalid_token(api_client, token):
    response = api_client.post(VERIFY, {"token": token}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] in {"INVALID_TOKEN", "VALIDATION_ERROR"}


def test_verify_with_an_expired_token_is_400(api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        register(api_client, "late@example.com")
    token = token_from(outbox_to("late@example.com")[0])
    AccountToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api_client.post(VERIFY, {"token": token}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_TOKEN")
    assert not User.objects.get(email="late@example.com").is_verified


@pytest.mark.slow
def test_resend_invalidates_the_earlier_link(api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        register(api_client, "resend@example.com")
    first = token_from(outbox_to("resend@example.com")[0])
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.post(RESEND, {"email": "resend@example.com"}, format="json").status_code == 202
    second = token_from(outbox_to("resend@example.com")[1])
    assert first != second
    assert api_client.post(VERIFY, {"token": first}, format="json").status_code == 400
    assert api_client.post(VERIFY, {"token": second}, format="json").status_code == 200


def test_register_resend_and_reset_answer_the_same_for_known_and_unknown_addresses(
    api_client, user, unverified_user,
):
    for path in (RESEND, "/api/v1/auth/request-password-reset"):
        answers = [api_client.post(path, {"email": email}, format="json")
                   for email in (user.email, unverified_user.email, "nobody@example.com")]
        assert {a.status_code for a in answers} == {202}
        assert len({a.content for a in answers}) == 1


def test_resend_for_a_verified_or_unknown_address_sends_nothing(
    api_client, user, django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(RESEND, {"email": user.email}, format="json")
        api_client.post(RESEND, {"email": "ghost@example.com"}, format="json")
    assert mail.outbox == []


def test_a_weak_password_lists_every_broken_rule(api_client):
    response = register(api_client, "weak@example.com", password="abc")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    messages = " ".join(body["errors"]["password"])
    for rule in ("at least 8", "upper-case", "digit", "special"):
        assert rule in messages
    assert not User.objects.filter(email="weak@example.com").exists()


def test_a_129_character_password_is_refused_and_nothing_is_truncated(api_client):
    response = register(api_client, "long@example.com", password="Aa1!" + "x" * 125)
    assert response.status_code == 400
    assert any("at most 128" in m for m in response.json()["errors"]["password"])
    ok = register(api_client, "exact@example.com", password="Aa1!" + "q" * 124)
    assert ok.status_code == 202
    user = User.objects.get(email="exact@example.com")
    assert user.check_password("Aa1!" + "q" * 124)
    assert not user.check_password("Aa1!" + "q" * 123)


def test_passwords_are_checked_exactly_as_typed(api_client):
    assert register(api_client, "spaces@example.com", password=" Padded-Pass1 ").status_code == 202
    user = User.objects.get(email="spaces@example.com")
    user.email_verified_at = timezone.now()
    user.save()
    assert login(api_client, "spaces@example.com", "Padded-Pass1").status_code == 401
    assert login(api_client, "spaces@example.com", " padded-pass1 ").status_code == 401
    assert login(api_client, "spaces@example.com", " Padded-Pass1 ").status_code == 200


def test_nist_policy_has_no_composition_rules_but_needs_15_characters(api_client, settings):
    settings.PASSWORD_POLICY = "nist"
    short = register(api_client, "nist1@example.com", password="Aa1!short")
    assert short.status_code == 400
    messages = " ".join(short.json()["errors"]["password"])
    assert "at least 15" in messages and "upper-case" not in messages
    assert register(api_client, "nist2@example.com", password="correct horse battery staple ✓").status_code == 202
    assert register(api_client, "nist3@example.com", password="1q2w3e4r5t6y7u8i9o0p").status_code == 400


def test_composition_policy_rejects_common_passwords(api_client):
    response = register(api_client, "common@example.com", password="Password1!")
    assert response.status_code == 400
    assert any("too common" in m for m in response.json()["errors"]["password"])


def test_similarity_to_the_email_is_refused(api_client):
    response = register(api_client, "marguerite.yourcenar@example.com", password="Marguerite.Yourcenar1")
    assert response.status_code == 400


def test_concurrent_style_duplicate_registration_creates_one_account(api_client):
    UserFactory(email="dup@example.com")
    assert register(api_client, "DUP@example.com").status_code == 202
    assert User.objects.filter(email__iexact="dup@example.com").count() == 1


def test_a_dead_mail_server_never_fails_the_request(api_client, settings, django_capture_on_commit_callbacks):
    from tests.conftest import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 1
    with django_capture_on_commit_callbacks(execute=True):
        response = register(api_client, "offline@example.com")
    assert response.status_code == 202
    assert User.objects.filter(email="offline@example.com").exists()


def test_a_failed_verification_is_audited_with_its_problem_code(api_client):
    api_client.post(VERIFY, {"token": "no-such-token"}, format="json")
    event = AuditEvent.objects.get(action="auth.email.verification_failed")
    # Not under a key the audit scrubber takes for a secret ("code"), where staff would see [REDACTED].
    assert event.extra["problem_code"] == "INVALID_TOKEN"
    assert "[REDACTED]" not in str(event.extra)
