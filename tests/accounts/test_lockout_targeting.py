"""The lockout cannot be aimed at other people (issue 12 §5).

- the admin's login page shares the API login's rate limit and lockout;
- the lockout email carries a single-use "unlock and sign in" link (POST auth/unlock);
- a client that has signed in to the account before passes the IP lock with the right password;
- TRUSTED_PROXY_COUNT=0 behind a proxy is warned about, once, at run time.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone

from accounts.models import AccountToken
from audit.models import AuditEvent
from tests.accounts.conftest import login, outbox_to

pytestmark = pytest.mark.django_db
WRONG = "Wrong-Password-1!"
UNLOCK_RE = re.compile(r"/unlock\?token=([A-Za-z0-9_\-]+)")
HOME = {"REMOTE_ADDR": "192.0.2.10", "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"}


def post_login(client, email, password, **extra):
    return client.post("/api/v1/auth/login", {"email": email, "password": password}, format="json", **extra)


def unlock(client, token):
    return client.post("/api/v1/auth/unlock", {"token": token}, format="json")


def lock(api_client, email, *, commit_callbacks):
    with commit_callbacks(execute=True):
        responses = [login(api_client, email, WRONG) for _ in range(10)]
    assert responses[-1].status_code == 429
    return responses


def unlock_token_from(message) -> str:
    match = UNLOCK_RE.search(message.body)
    assert match, message.body
    return match.group(1)


# --- The unlock link -------------------------------------------------------------------------------
def test_the_lockout_email_carries_a_link_that_unlocks_and_signs_in(
    api_client, user, password, django_capture_on_commit_callbacks, settings,
):
    lock(api_client, user.email, commit_callbacks=django_capture_on_commit_callbacks)
    [notice] = outbox_to(user.email)
    token = unlock_token_from(notice)
    assert f"{settings.FRONTEND_URL}/unlock?token={token}" in notice.body
    assert f"{settings.FRONTEND_URL}/unlock?token={token}" in notice.alternatives[0][0]
    assert len(token) >= 43  # 32 random bytes
    # Stored only as its hash, short-lived.
    row = AccountToken.objects.get(user=user, purpose=AccountToken.Purpose.UNLOCK)
    assert token not in row.token_hash
    assert row.expires_at - row.created_at == timedelta(minutes=settings.UNLOCK_TOKEN_MINUTES)

    response = unlock(api_client, token)
    assert response.status_code == 200, response.content
    body = response.json()
    assert {"access", "refresh", "expires_in", "session_id", "user"} <= set(body)
    assert body["token_type"] == "Bearer"
    assert body["user"]["id"] == str(user.pk)
    assert response["Cache-Control"] == "no-store"
    me = api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert me.status_code == 200
    # The lock is over: the password works again, and the attempts are gone.
    assert not AccessAttempt.objects.filter(username=user.email).exists()
    assert login(api_client, user.email, password).status_code == 200
    assert AuditEvent.objects.filter(action="auth.lockout.unlocked", target_id=str(user.pk)).count() == 1
    assert AuditEvent.objects.filter(action="auth.lockout.cleared", target_id=str(user.pk)).count() == 1


def test_the_unlock_link_works_once(api_client, user, django_capture_on_commit_callbacks):
    lock(api_client, user.email, commit_callbacks=django_capture_on_commit_callbacks)
    token = unlock_token_from(outbox_to(user.email)[0])
    assert unlock(api_client, token).status_code == 200
    again = unlock(api_client, token)
    assert again.status_code == 400
    assert again["Content-Type"] == "application/problem+json"
    assert again.json()["code"] == "INVALID_TOKEN"
    assert AuditEvent.objects.filter(action="auth.lockout.unlock_failed").count() == 1


def test_an_expired_or_unknown_unlock_link_is_refused_and_the_lock_stays(
    api_client, user, password, django_capture_on_commit_callbacks,
):
    lock(api_client, user.email, commit_callbacks=django_capture_on_commit_callbacks)
    token = unlock_token_from(outbox_to(user.email)[0])
    AccountToken.objects.filter(purpose=AccountToken.Purpose.UNLOCK).update(expires_at=timezone.now())
    assert unlock(api_client, token).json()["code"] == "INVALID_TOKEN"
    assert unlock(api_client, "x" * 43).json()["code"] == "INVALID_TOKEN"
    assert unlock(api_client, 12).status_code == 400
    assert login(api_client, user.email, password).status_code == 429


def test_a_newer_lockout_email_kills_the_older_link(api_client, user, django_capture_on_commit_callbacks):
    lock(api_client, user.email, commit_callbacks=django_capture_on_commit_callbacks)
    first = unlock_token_from(outbox_to(user.email)[0])
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=3601))
    lock(api_client, user.email, commit_callbacks=django_capture_on_commit_callbacks)
    second = unlock_token_from(outbox_to(user.email)[1])
    assert unlock(api_client, first).status_code == 400
    assert unlock(api_client, second).status_code == 200


def test_a_reset_token_is_not_an_unlock_token(api_client, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post("/api/v1/auth/request-password-reset", {"email": user.email}, format="json")
    reset_token = re.search(r"token=([A-Za-z0-9_\-]+)", outbox_to(user.email)[0].body).group(1)
    assert unlock(api_client, reset_token).json()["code"] == "INVALID_TOKEN"


# --- The admin login shares the login's rules -----------------------------------------------------------
def test_a_lock_set_through_the_admin_login_emails_the_owner_an_unlock_link(
    client, api_client, staff_user, password, django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        statuses = [client.post("/admin/login/", {"username": staff_user.email.upper(), "password": WRONG}).status_code
                    for _ in range(10)]
    assert statuses[-1] == 429
    assert login(api_client, staff_user.email, password).json()["code"] == "ACCOUNT_LOCKED"
    [notice] = outbox_to(staff_user.email)
    assert unlock(api_client, unlock_token_from(notice)).status_code == 200
    assert client.post("/admin/login/", {"username": staff_user.email, "password": password}).status_code == 302


def test_the_admin_login_spends_the_api_login_rate_limit(client, api_client, settings):
    from dashtam.ratelimit import counter
    from dashtam.ratelimit.rule_table import DEFAULT_RATE_RULES

    settings.RATELIMIT_ENABLE = True
    rules = {name: dict(rule) for name, rule in DEFAULT_RATE_RULES.items()}
    rules["login"]["rate"] = "3/m"
    settings.RATE_LIMIT_RULES = rules
    counter.reset_state(namespace=f"identity-admin-{uuid.uuid4().hex[:12]}")
    try:
        first = [
            post_login(api_client, "a@example.com", WRONG).status_code,
            client.post("/admin/login/", {"username": "b@example.com", "password": WRONG}).status_code,
            post_login(api_client, "c@example.com", WRONG).status_code,
        ]
        admin = client.post("/admin/login/", {"username": "d@example.com", "password": WRONG})
        api = post_login(api_client, "e@example.com", WRONG)
        other_ip = client.post("/admin/login/", {"username": "f@example.com", "password": WRONG},
                               REMOTE_ADDR="203.0.113.77")
        page = client.get("/admin/login/")
    finally:
        counter.reset_state()
    assert first == [401, 200, 401]
    assert admin.status_code == 429
    assert int(admin["Retry-After"]) >= 1
    assert api.status_code == 429
    assert api.json()["code"] == "RATE_LIMITED"
    assert other_ip.status_code == 200
    assert page.status_code == 200  # only the form's POST is a login attempt


# --- Known clients pass the IP lock -------------------------------------------------------------------
@pytest.fixture
def ip_locked(api_client, settings):
    """Lock the client IP of HOME (12 failures across 4 other addresses)."""
    settings.LOCKOUT_IP_FAILURE_LIMIT = 12

    def apply():
        for n in range(4):
            for _ in range(3):
                post_login(api_client, f"victim{n}@example.com", WRONG, **HOME)
    return apply


def test_a_client_that_signed_in_before_passes_the_ip_lock_with_the_right_password(
    api_client, user, password, ip_locked,
):
    assert post_login(api_client, user.email, password, **HOME).status_code == 200  # yesterday, from home
    ip_locked()
    stranger = post_login(api_client, user.email, password, REMOTE_ADDR=HOME["REMOTE_ADDR"],
                          HTTP_USER_AGENT="curl/8.5.0")
    assert stranger.status_code == 429
    assert stranger.json()["code"] == "ACCOUNT_LOCKED"
    assert post_login(api_client, "victim0@example.com", WRONG, **HOME).status_code == 429
    response = post_login(api_client, user.email, password, **HOME)
    assert response.status_code == 200, response.content
    assert response.json()["user"]["id"] == str(user.pk)


def test_a_known_client_with_a_wrong_password_is_refused_and_counted_toward_the_account(
    api_client, user, password, ip_locked, django_capture_on_commit_callbacks,
):
    """No free guesses behind the IP lock: each wrong password counts toward the account's
    lock, and the answer is the IP lock's 429, as for any client."""
    assert post_login(api_client, user.email, password, **HOME).status_code == 200
    ip_locked()
    with django_capture_on_commit_callbacks(execute=True):
        answers = [post_login(api_client, user.email, WRONG, **HOME) for _ in range(10)]
    assert {a.status_code for a in answers} == {429}
    assert {a.json()["code"] for a in answers} == {"ACCOUNT_LOCKED"}
    assert AccessAttempt.objects.get(username=user.email).failures_since_start == 10
    assert post_login(api_client, user.email, password, **HOME).status_code == 429  # now the account's own lock
    assert len(outbox_to(user.email)) == 1  # the owner is told, with an unlock link


def test_a_client_without_history_on_this_account_stays_locked(api_client, user, password, ip_locked):
    from tests.factories import UserFactory

    other = UserFactory(password=password)
    assert post_login(api_client, other.email, password, **HOME).status_code == 200  # someone else's session
    ip_locked()
    assert post_login(api_client, user.email, password, **HOME).status_code == 429


def test_the_account_lock_is_never_bypassed_by_a_known_client(
    api_client, user, password, ip_locked, django_capture_on_commit_callbacks,
):
    assert post_login(api_client, user.email, password, **HOME).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(10):
            post_login(api_client, user.email, WRONG, REMOTE_ADDR="198.51.100.20")
    ip_locked()
    assert post_login(api_client, user.email, password, **HOME).status_code == 429


def test_a_known_client_passes_the_ip_lock_on_the_admin_login_too(
    client, api_client, staff_user, password, ip_locked,
):
    assert post_login(api_client, staff_user.email, password, **HOME).status_code == 200
    ip_locked()
    stranger = client.post("/admin/login/", {"username": staff_user.email, "password": password},
                           REMOTE_ADDR=HOME["REMOTE_ADDR"], HTTP_USER_AGENT="curl/8.5.0")
    assert stranger.status_code == 429
    known = client.post("/admin/login/", {"username": staff_user.email, "password": password}, **HOME)
    assert known.status_code == 302


# --- TRUSTED_PROXY_COUNT=0 behind a proxy ----------------------------------------------------------------
@pytest.fixture
def fresh_proxy_warning():
    from dashtam.checks import forwarded_for_reset

    forwarded_for_reset()
    yield
    forwarded_for_reset()


def _proxy_warnings(caplog):
    return [r for r in caplog.records if r.name == "dashtam.checks" and "dashtam.W001" in r.getMessage()]


def test_production_warns_once_when_x_forwarded_for_arrives_with_no_trusted_proxy(
    client, settings, caplog, fresh_proxy_warning,
):
    from dashtam.checks import check_forwarded_for

    settings.IS_PRODUCTION = True
    settings.TRUSTED_PROXY_COUNT = 0
    caplog.set_level(logging.WARNING, logger="dashtam.checks")
    assert client.get("/healthz").status_code == 200
    assert _proxy_warnings(caplog) == []
    assert check_forwarded_for() == []
    for _ in range(3):
        client.get("/healthz", HTTP_X_FORWARDED_FOR="198.51.100.7")
    [warning] = _proxy_warnings(caplog)
    assert warning.levelno == logging.WARNING
    assert "TRUSTED_PROXY_COUNT" in warning.getMessage()
    assert [w.id for w in check_forwarded_for()] == ["dashtam.W001"]


@pytest.mark.parametrize(("production", "count"), [(True, 1), (False, 0)])
def test_no_proxy_warning_with_a_trusted_proxy_or_outside_production(
    client, settings, caplog, fresh_proxy_warning, production, count,
):
    settings.IS_PRODUCTION = production
    settings.TRUSTED_PROXY_COUNT = count
    caplog.set_level(logging.WARNING, logger="dashtam.checks")
    client.get("/healthz", HTTP_X_FORWARDED_FOR="198.51.100.7, 10.0.0.1")
    assert _proxy_warnings(caplog) == []


def test_the_unlock_link_of_an_account_with_a_second_factor_still_asks_for_it(
    api_client, user, password, django_capture_on_commit_callbacks,
):
    from accounts.mfa.services import totp_demo_device_ensure
    from tests.accounts.mfa_helpers import code_for, login_mfa

    secret = totp_demo_device_ensure(user=user)
    lock(api_client, user.email, commit_callbacks=django_capture_on_commit_callbacks)
    token = unlock_token_from(outbox_to(user.email)[0])
    body = unlock(api_client, token).json()
    assert body["mfa_required"] is True and "access" not in body
    assert login_mfa(api_client, body["mfa_token"], code_for(secret)).status_code == 200
