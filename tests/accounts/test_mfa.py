"""Second factors through the real HTTP stack: enrolment, the login step, recovery codes, bad input."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from accounts.mfa.models import MfaChallenge, RecoveryCode, TotpDevice
from audit.models import AuditEvent
from sessions_mgmt.models import Session
from tests.accounts.conftest import login, outbox_to
from tests.accounts.mfa_helpers import code_for, enable_totp, login_mfa, mfa_token_for

# Emails are enqueued on commit: these tests commit, as a request does.
pytestmark = pytest.mark.django_db(transaction=True)


def _claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _problem(response, status: int, code: str):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.json()


# --- enrolment ---------------------------------------------------------------------------------
def test_enrolment_returns_secret_uri_and_qr_and_changes_nothing_until_confirmed(auth_client, api_client, user,
                                                                                  password):
    response = auth_client.post("/api/v1/auth/mfa/totp", {"password": password}, format="json")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("no-store")
    body = response.json()
    assert set(body) == {"secret", "otpauth_uri", "qr_svg"}
    assert len(base64.b32decode(body["secret"])) >= 20
    assert body["otpauth_uri"].startswith("otpauth://totp/Dashtam:")
    assert "issuer=Dashtam" in body["otpauth_uri"] and f"secret={body['secret']}" in body["otpauth_uri"]
    assert user.email.replace("@", "%40") in body["otpauth_uri"]
    assert body["qr_svg"].startswith("<svg") and "<script" not in body["qr_svg"]
    # Pending: the login still gives tokens, the status says off.
    assert auth_client.get("/api/v1/auth/mfa").json()["totp"]["enabled"] is False
    assert "access" in login(api_client, user.email, password).json()
    assert AuditEvent.objects.filter(action="auth.mfa.totp.enrolment_started", actor=user).count() == 1
    assert body["secret"] not in json.dumps(list(AuditEvent.objects.values("extra")))


def test_enrolment_needs_the_right_password(auth_client, user):
    response = auth_client.post("/api/v1/auth/mfa/totp", {"password": "Wrong-Password-1!"}, format="json")
    _problem(response, 400, "VALIDATION_ERROR")
    assert "password" in response.json()["errors"]
    assert not TotpDevice.objects.filter(user=user).exists()


def test_confirm_turns_it_on_with_ten_hashed_recovery_codes_audit_and_email(auth_client, user, password):
    mail.outbox.clear()
    secret, codes = enable_totp(auth_client, password)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = list(RecoveryCode.objects.filter(user=user).values_list("code_hash", flat=True))
    assert len(stored) == 10
    for code in codes:
        assert code not in stored and code.replace("-", "") not in stored
    status = auth_client.get("/api/v1/auth/mfa").json()
    assert status["totp"]["enabled"] is True and status["totp"]["created_at"]
    assert status["recovery_codes"] == {"remaining": 10} and status["passkeys"] == 0
    assert AuditEvent.objects.filter(action="auth.mfa.totp.enabled", actor=user).count() == 1
    [message] = outbox_to(user.email)
    assert "turned on" in message.subject.lower()
    assert secret not in message.body and codes[0] not in message.body


def test_confirming_without_a_pending_device_is_a_conflict(auth_client):
    _problem(auth_client.post("/api/v1/auth/mfa/totp/confirm", {"code": "123456"}, format="json"), 409, "CONFLICT")


def test_confirm_with_a_wrong_code_changes_nothing(auth_client, user, password):
    secret = auth_client.post("/api/v1/auth/mfa/totp", {"password": password}, format="json").json()["secret"]
    wrong = "000000" if code_for(secret) != "000000" else "111111"
    _problem(auth_client.post("/api/v1/auth/mfa/totp/confirm", {"code": wrong}, format="json"),
             401, "INVALID_MFA_CODE")
    assert not TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()
    assert AuditEvent.objects.filter(action="auth.mfa.failed", extra__step="confirm").count() == 1


def test_enrolling_twice_replaces_the_pending_device_and_keeps_the_confirmed_one(auth_client, api_client, user,
                                                                               password):
    first_secret, _ = enable_totp(auth_client, password)
    pending_a = auth_client.post("/api/v1/auth/mfa/totp", {"password": password}, format="json").json()["secret"]
    pending_b = auth_client.post("/api/v1/auth/mfa/totp", {"password": password}, format="json").json()["secret"]
    assert TotpDevice.objects.filter(user=user, confirmed_at__isnull=True).count() == 1
    # The confirmed device still signs in; the replaced pending one cannot be confirmed.
    token = mfa_token_for(api_client, user.email, password)
    assert login_mfa(api_client, token, code_for(first_secret)).status_code == 200
    _problem(auth_client.post("/api/v1/auth/mfa/totp/confirm", {"code": code_for(pending_a)}, format="json"),
             401, "INVALID_MFA_CODE")
    assert auth_client.post("/api/v1/auth/mfa/totp/confirm", {"code": code_for(pending_b)},
                            format="json").status_code == 200
    assert TotpDevice.objects.filter(user=user).count() == 1
    # Now only the new device works.
    token = mfa_token_for(api_client, user.email, password)
    _problem(login_mfa(api_client, token, code_for(first_secret, 1)), 401, "INVALID_MFA_CODE")
    assert login_mfa(api_client, token, code_for(pending_b, 1)).status_code == 200


def test_turning_it_on_can_end_every_other_session(auth_client, api_client, user, password):
    other = login(api_client, user.email, password).json()
    enable_totp(auth_client, password, end_other_sessions=True)
    assert Session.objects.get(pk=other["session_id"]).revoked_at is not None
    assert Session.objects.get(pk=auth_client.login_body["session_id"]).revoked_at is None
    assert auth_client.get("/api/v1/auth/me").status_code == 200


# --- the login step ---------------------------------------------------------------------------
def test_login_with_a_factor_answers_mfa_required_and_no_tokens(auth_client, api_client, user, password):
    enable_totp(auth_client, password)
    sessions_before = Session.objects.filter(user=user).count()
    response = login(api_client, user.email, password)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("no-store")
    body = response.json()
    assert set(body) == {"mfa_required", "mfa_token", "methods", "expires_in"}
    assert body["mfa_required"] is True and body["expires_in"] == 300
    assert body["methods"] == ["totp", "recovery_code"]
    assert Session.objects.filter(user=user).count() == sessions_before
    # Stored hashed only.
    assert not MfaChallenge.objects.filter(token_hash=body["mfa_token"]).exists()
    assert MfaChallenge.objects.filter(user=user).count() == 1
    assert AuditEvent.objects.filter(action="auth.mfa.challenge", actor=user, extra__methods_done=["password"]).count() == 1
    # Only the auth_client's own login succeeded: the password step started no session.
    assert AuditEvent.objects.filter(action="auth.login.succeeded", actor=user).count() == 1


def test_totp_code_finishes_the_login_with_amr_and_auth_methods(auth_client, api_client, user, password):
    secret, _ = enable_totp(auth_client, password)
    token = mfa_token_for(api_client, user.email, password)
    response = login_mfa(api_client, token, code_for(secret))
    assert response.status_code == 200, response.content
    assert response["Cache-Control"].startswith("no-store")
    body = response.json()
    assert set(body) == {"access", "refresh", "token_type", "expires_in", "session_id", "user"}
    assert _claims(body["access"])["amr"] == ["password", "totp"]
    assert Session.objects.get(pk=body["session_id"]).auth_methods == ["password", "totp"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    sessions = api_client.get("/api/v1/auth/sessions").json()
    sessions = sessions.get("results", sessions) if isinstance(sessions, dict) else sessions
    mine = [s for s in sessions if s["id"] == body["session_id"]]
    assert mine[0]["auth_methods"] == ["password", "totp"]
    # Refresh does not ask again, and keeps amr.
    refreshed = api_client.post("/api/v1/auth/refresh", {"refresh": body["refresh"]}, format="json")
    assert refreshed.status_code == 200
    assert _claims(refreshed.json()["access"])["amr"] == ["password", "totp"]
    assert AuditEvent.objects.filter(action="auth.login.succeeded", actor=user,
                                     extra__auth_methods=["password", "totp"]).count() == 1


def test_password_only_login_carries_amr_password(api_client, user, password):
    body = login(api_client, user.email, password).json()
    assert _claims(body["access"])["amr"] == ["password"]
    assert Session.objects.get(pk=body["session_id"]).auth_methods == ["password"]


def test_the_mfa_token_is_single_use(auth_client, api_client, user, password):
    secret, _ = enable_totp(auth_client, password)
    token = mfa_token_for(api_client, user.email, password)
    assert login_mfa(api_client, token, code_for(secret)).status_code == 200
    _problem(login_mfa(api_client, token, code_for(secret, 1)), 401, "TOKEN_INVALID")


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", "", "12 34 5x", "x" * 64,
                                  "\u0661\u0662\u0663\u0664\u0665\u0666", "\uff11\uff12\uff13\uff14\uff15\uff16",
                                  "k7xq-2m9p-wd4h-tn3\u00e9"])
def test_malformed_codes_are_invalid_mfa_code(auth_client, api_client, user, password, code):
    enable_totp(auth_client, password)
    token = mfa_token_for(api_client, user.email, password)
    response = login_mfa(api_client, token, code)
    if code == "":
        _problem(response, 400, "VALIDATION_ERROR")
    else:
        _problem(response, 401, "INVALID_MFA_CODE")


@pytest.mark.slow
def test_wrong_expired_and_replayed_codes_are_refused(auth_client, api_client, user, password):
    secret, _ = enable_totp(auth_client, password)
    token = mfa_token_for(api_client, user.email, password)
    _problem(login_mfa(api_client, token, code_for(secret, -3)), 401, "INVALID_MFA_CODE")  # expired
    _problem(login_mfa(api_client, token, code_for(secret, 3)), 401, "INVALID_MFA_CODE")  # not yet
    # The step used to confirm (-1) was spent: replaying it is refused.
    _problem(login_mfa(api_client, token, code_for(secret, -1)), 401, "INVALID_MFA_CODE")
    # +-1 step of drift is accepted.
    assert login_mfa(api_client, token, code_for(secret, 1)).status_code == 200
    # The same code again (on a new token) is a replay, and so is an older step.
    token = mfa_token_for(api_client, user.email, password)
    _problem(login_mfa(api_client, token, code_for(secret, 1)), 401, "INVALID_MFA_CODE")
    _problem(login_mfa(api_client, token, code_for(secret)), 401, "INVALID_MFA_CODE")
    reasons = list(AuditEvent.objects.filter(action="auth.mfa.failed").values_list("extra__reason", flat=True))
    assert reasons.count("replayed") == 3 and reasons.count("wrong_code") == 2


def test_five_wrong_codes_kill_the_mfa_token(auth_client, api_client, user, password, settings):
    secret, _ = enable_totp(auth_client, password)
    token = mfa_token_for(api_client, user.email, password)
    wrong = "000000" if code_for(secret) != "000000" else "111111"
    for _ in range(5):
        _problem(login_mfa(api_client, token, wrong), 401, "INVALID_MFA_CODE")
    _problem(login_mfa(api_client, token, code_for(secret)), 401, "TOKEN_INVALID")


def test_an_expired_or_unknown_mfa_token_is_token_invalid(auth_client, api_client, user, password):
    secret, _ = enable_totp(auth_client, password)
    token = mfa_token_for(api_client, user.email, password)
    MfaChallenge.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    _problem(login_mfa(api_client, token, code_for(secret)), 401, "TOKEN_INVALID")
    _problem(login_mfa(api_client, "not-a-token", code_for(secret)), 401, "TOKEN_INVALID")
    # JSON escapes (a lone surrogate is refused by the parser's field, never a 500).
    for odd, status, code in (("\\ud800", 400, "VALIDATION_ERROR"), ("t\\u00f6ken", 401, "TOKEN_INVALID"),
                              ("\\ud83d\\ude00", 401, "TOKEN_INVALID")):
        raw = '{"mfa_token": "' + odd + '", "code": "' + code_for(secret) + '"}'
        _problem(api_client.post("/api/v1/auth/login/mfa", data=raw, content_type="application/json"),
                 status, code)


def test_the_mfa_token_is_bound_to_the_client(auth_client, api_client, user, password):
    secret, _ = enable_totp(auth_client, password)
    token = mfa_token_for(api_client, user.email, password)
    _problem(login_mfa(api_client, token, code_for(secret), HTTP_USER_AGENT="Other/1.0"), 401, "TOKEN_INVALID")
    _problem(login_mfa(api_client, token, code_for(secret), REMOTE_ADDR="203.0.113.9"), 401, "TOKEN_INVALID")
    assert login_mfa(api_client, token, code_for(secret)).status_code == 200


@pytest.mark.slow
def test_wrong_codes_count_toward_the_account_lockout(auth_client, api_client, user, password, settings):
    settings.LOCKOUT_FAILURE_LIMIT = 6
    secret, _ = enable_totp(auth_client, password)
    mail.outbox.clear()
    wrong = "000000" if code_for(secret) != "000000" else "111111"
    token = mfa_token_for(api_client, user.email, password)
    for _ in range(5):
        _problem(login_mfa(api_client, token, wrong), 401, "INVALID_MFA_CODE")
    # A correct password alone does not reset the count...
    token = mfa_token_for(api_client, user.email, password)
    # ...and the sixth wrong code locks the account, as a sixth wrong password would.
    locked = login_mfa(api_client, token, wrong)
    _problem(locked, 429, "ACCOUNT_LOCKED")
    assert int(locked["Retry-After"]) > 0
    _problem(login_mfa(api_client, token, code_for(secret)), 429, "ACCOUNT_LOCKED")
    _problem(login(api_client, user.email, password), 429, "ACCOUNT_LOCKED")
    assert AuditEvent.objects.filter(action="auth.lockout", target_id=str(user.pk)).count() == 1
    assert any("lock" in m.subject.lower() for m in outbox_to(user.email))


@pytest.mark.slow
def test_a_completed_sign_in_resets_the_failure_count(auth_client, api_client, user, password, settings):
    settings.LOCKOUT_FAILURE_LIMIT = 6
    secret, _ = enable_totp(auth_client, password)
    wrong = "000000" if code_for(secret) != "000000" else "111111"
    token = mfa_token_for(api_client, user.email, password)
    for _ in range(4):
        login_mfa(api_client, token, wrong)
    assert login_mfa(api_client, token, code_for(secret)).status_code == 200
    token = mfa_token_for(api_client, user.email, password)
    for _ in range(4):
        _problem(login_mfa(api_client, token, wrong), 401, "INVALID_MFA_CODE")


# --- recovery codes --------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_recovery_code_works_once_ignoring_case_and_dashes(auth_client, api_client, user, password):
    _, codes = enable_totp(auth_client, password)
    mail.outbox.clear()
    token = mfa_token_for(api_client, user.email, password)
    typed = codes[0].replace("-", "").upper()
    response = login_mfa(api_client, token, typed)
    assert response.status_code == 200, response.content
    assert _claims(response.json()["access"])["amr"] == ["password", "recovery_code"]
    assert Session.objects.get(pk=response.json()["session_id"]).auth_methods == ["password", "recovery_code"]
    token = mfa_token_for(api_client, user.email, password)
    _problem(login_mfa(api_client, token, codes[0]), 401, "INVALID_MFA_CODE")
    assert login_mfa(api_client, token, " " + codes[1].upper() + " ").status_code == 200
    assert auth_client.get("/api/v1/auth/mfa").json()["recovery_codes"]["remaining"] == 8
    used = AuditEvent.objects.filter(action="auth.mfa.recovery_code.used", actor=user).order_by("id")
    assert [e.extra["remaining"] for e in used] == [9, 8]
    messages = [m for m in outbox_to(user.email) if "recovery code" in m.subject.lower()]
    assert len(messages) == 2 and "8 recovery codes left" in messages[-1].body


def test_regenerating_recovery_codes_needs_the_password_and_kills_the_old_ones(auth_client, api_client, user,
                                                                              password):
    _, old = enable_totp(auth_client, password)
    _problem(auth_client.post("/api/v1/auth/mfa/recovery-codes", {"password": "Wrong-1-Password!"},
                              format="json"), 400, "VALIDATION_ERROR")
    mail.outbox.clear()
    response = auth_client.post("/api/v1/auth/mfa/recovery-codes", {"password": password}, format="json")
    assert response.status_code == 200 and response["Cache-Control"].startswith("no-store")
    new = response.json()["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    token = mfa_token_for(api_client, user.email, password)
    _problem(login_mfa(api_client, token, old[0]), 401, "INVALID_MFA_CODE")
    assert login_mfa(api_client, token, new[0]).status_code == 200
    assert AuditEvent.objects.filter(action="auth.mfa.recovery_codes.regenerated", actor=user).count() == 1
    assert any("recovery codes" in m.subject.lower() for m in outbox_to(user.email))


def test_regenerating_without_totp_is_a_conflict(auth_client, password):
    _problem(auth_client.post("/api/v1/auth/mfa/recovery-codes", {"password": password}, format="json"),
             409, "CONFLICT")


# --- turning it off ---------------------------------------------------------------------------------
def test_disabling_with_a_wrong_code_changes_nothing(auth_client, api_client, user, password):
    secret, _ = enable_totp(auth_client, password)
    wrong = "000000" if code_for(secret) != "000000" else "111111"
    response = auth_client.delete("/api/v1/auth/mfa/totp", {"password": password, "code": wrong}, format="json")
    _problem(response, 401, "INVALID_MFA_CODE")
    response = auth_client.delete("/api/v1/auth/mfa/totp", {"password": "Wrong-1-Password!",
                                                             "code": code_for(secret)}, format="json")
    _problem(response, 400, "VALIDATION_ERROR")
    assert TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).count() == 1
    assert RecoveryCode.objects.filter(user=user).count() == 10
    assert login(api_client, user.email, password).json()["mfa_required"] is True


@pytest.mark.slow
def test_disabling_with_password_and_code_turns_it_off(auth_client, api_client, user, password):
    secret, _ = enable_totp(auth_client, password)
    other = login_mfa(api_client, mfa_token_for(api_client, user.email, password), code_for(secret)).json()
    mail.outbox.clear()
    response = auth_client.delete("/api/v1/auth/mfa/totp", {"password": password, "code": code_for(secret, 1),
                                                             "end_other_sessions": True}, format="json")
    assert response.status_code == 204, response.content
    assert not TotpDevice.objects.filter(user=user).exists() and not RecoveryCode.objects.filter(user=user).exists()
    assert Session.objects.get(pk=other["session_id"]).revoked_at is not None
    assert auth_client.get("/api/v1/auth/mfa").json()["totp"]["enabled"] is False
    assert "access" in login(api_client, user.email, password).json()
    assert AuditEvent.objects.filter(action="auth.mfa.totp.disabled", actor=user).count() == 1
    assert any("turned off" in m.subject.lower() for m in outbox_to(user.email))
    _problem(auth_client.delete("/api/v1/auth/mfa/totp", {"password": password, "code": "123456"}, format="json"),
             409, "CONFLICT")


def test_password_reset_does_not_switch_mfa_off(auth_client, api_client, user, password):
    from tests.accounts.conftest import NEW_PASSWORD, token_from

    secret, _ = enable_totp(auth_client, password)
    mail.outbox.clear()
    api_client.post("/api/v1/auth/request-password-reset", {"email": user.email}, format="json")
    token = token_from(outbox_to(user.email)[-1])
    assert api_client.post("/api/v1/auth/reset-password", {"token": token, "new_password": NEW_PASSWORD},
                           format="json").status_code == 200
    body = login(api_client, user.email, NEW_PASSWORD).json()
    assert body["mfa_required"] is True and "access" not in body
    assert login_mfa(api_client, body["mfa_token"], code_for(secret)).status_code == 200


# --- at rest ---------------------------------------------------------------------------------------
def test_the_seed_is_encrypted_at_rest_and_bound_to_its_row(auth_client, user, password):
    from dashtam import crypto

    secret, _ = enable_totp(auth_client, password)
    table = TotpDevice._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, secret_encrypted FROM {table}")  # test, fixed table name
        rows = cursor.fetchall()
    assert len(rows) == 1
    raw = rows[0][1]
    assert secret not in raw and secret.lower() not in raw.lower()
    assert raw.startswith(crypto.current_key_id() + ".")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(raw, aad=f"accounts.TotpDevice:{rows[0][0]}:00000000-0000-0000-0000-000000000000:secret")


def test_unauthenticated_management_is_refused(api_client):
    for method, url in (("get", "/api/v1/auth/mfa"), ("post", "/api/v1/auth/mfa/totp"),
                        ("post", "/api/v1/auth/mfa/totp/confirm"), ("delete", "/api/v1/auth/mfa/totp"),
                        ("post", "/api/v1/auth/mfa/recovery-codes")):
        _problem(getattr(api_client, method)(url, {}, format="json"), 401, "NOT_AUTHENTICATED")


@pytest.mark.parametrize("body", [
    {}, {"mfa_token": "x"}, {"code": "123456"}, {"mfa_token": 123, "code": "123456"},
    {"mfa_token": "x", "code": 123456}, {"mfa_token": "x" * 300, "code": "123456"},
    {"mfa_token": "x", "code": "1" * 65}, {"mfa_token": ["x"], "code": {"a": 1}}, {"mfa_token": "x\x00", "code": "1"},
])
def test_bad_bodies_at_the_mfa_step_are_validation_errors(api_client, body):
    _problem(api_client.post("/api/v1/auth/login/mfa", body, format="json"), 400, "VALIDATION_ERROR")
