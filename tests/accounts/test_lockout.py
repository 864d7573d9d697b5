"""Lockout through django-axes, visible through DRF: 429 ACCOUNT_LOCKED with Retry-After."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEvent
from tests.accounts.conftest import login, outbox_to

pytestmark = pytest.mark.django_db
WRONG = "Wrong-Password-1!"


def fail(client, email, times):
    return [login(client, email, WRONG) for _ in range(times)]


def assert_locked(response, *, max_seconds=3600):
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "ACCOUNT_LOCKED"
    retry_after = int(response["Retry-After"])
    assert max_seconds - 60 <= retry_after <= max_seconds
    return retry_after


def test_nine_failures_do_not_lock(api_client, user, password):
    assert {r.status_code for r in fail(api_client, user.email, 9)} == {401}
    assert login(api_client, user.email, password).status_code == 200


@pytest.mark.slow
def test_the_tenth_failure_locks_for_an_hour_even_with_the_right_password(
    api_client, user, password, django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        responses = fail(api_client, user.email, 10)
    assert {r.status_code for r in responses[:9]} == {401}
    assert_locked(responses[9])
    assert_locked(login(api_client, user.email, password))
    assert_locked(login(api_client, user.email.upper(), WRONG))
    [notice] = outbox_to(user.email)
    assert "locked" in notice.subject
    assert AuditEvent.objects.filter(action="auth.lockout", target_id=str(user.pk)).count() == 1


def test_attempts_during_the_lock_do_not_extend_it(api_client, user):
    fail(api_client, user.email, 10)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=30))
    retry_after = assert_locked(login(api_client, user.email, WRONG), max_seconds=1800)
    assert retry_after > 1700


def test_an_unknown_email_is_locked_the_same_way(api_client, user):
    known = fail(api_client, user.email, 11)[-1]
    unknown = fail(api_client, "nobody@example.com", 11)[-1]
    assert_locked(known)
    assert_locked(unknown)
    strip = lambda b: {k: v for k, v in b.items() if k != "request_id"}  # noqa: E731
    assert strip(known.json()) == strip(unknown.json())


def test_time_travel_past_the_lock_lets_the_user_log_in(api_client, user, password):
    fail(api_client, user.email, 10)
    assert_locked(login(api_client, user.email, password))
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=3601))
    assert login(api_client, user.email, password).status_code == 200


@pytest.mark.slow
def test_a_successful_login_resets_the_counter(api_client, user, password):
    fail(api_client, user.email, 9)
    assert login(api_client, user.email, password).status_code == 200
    assert {r.status_code for r in fail(api_client, user.email, 9)} == {401}
    assert login(api_client, user.email, password).status_code == 200


@pytest.mark.slow
def test_a_successful_login_resets_only_its_own_account(api_client, user, password):
    other = "someone-else@example.com"
    fail(api_client, user.email, 3)
    fail(api_client, other, 4)
    assert login(api_client, user.email, password).status_code == 200
    assert not AccessAttempt.objects.filter(username=user.email).exists()
    assert AccessAttempt.objects.get(username=other).failures_since_start == 4


def test_the_daily_cleanup_deletes_attempts_that_no_longer_count(api_client, user, settings):
    from accounts.tasks import cleanup_account_tokens

    fail(api_client, user.email, 2)
    fail(api_client, "someone-else@example.com", 1)
    AccessAttempt.objects.filter(username=user.email).update(
        attempt_time=timezone.now() - timedelta(seconds=settings.LOCKOUT_COOLOFF_SECONDS + 1))

    assert cleanup_account_tokens() == 1
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["someone-else@example.com"]
    assert cleanup_account_tokens() == 0


@pytest.mark.slow
def test_many_accounts_from_one_ip_hit_the_ip_threshold(api_client, user, password, settings):
    settings.LOCKOUT_IP_FAILURE_LIMIT = 12
    for n in range(4):
        fail(api_client, f"victim{n}@example.com", 3)
    assert login(api_client, user.email, password).status_code == 429
    other_ip = api_client.post(
        "/api/v1/auth/login", {"email": user.email, "password": password}, format="json",
        REMOTE_ADDR="203.0.113.9",
    )
    assert other_ip.status_code == 200


@pytest.mark.slow
def test_the_ip_threshold_is_higher_than_the_account_threshold(api_client, user, password):
    for n in range(4):
        fail(api_client, f"colleague{n}@example.com", 5)
    assert login(api_client, user.email, password).status_code == 200


@pytest.mark.slow
def test_staff_unlock_command_clears_the_lock(api_client, user, password):
    fail(api_client, user.email, 10)
    call_command("axes_reset_username", user.email)
    assert login(api_client, user.email, password).status_code == 200


@pytest.mark.slow
def test_lockout_clear_service_unlocks_and_audits(api_client, user, password, staff_user):
    from accounts.services import lockout_clear

    fail(api_client, user.email, 10)
    assert lockout_clear(email=user.email.upper(), actor=staff_user) == 1
    assert lockout_clear(email=user.email, actor=staff_user) == 0
    assert login(api_client, user.email, password).status_code == 200
    assert AuditEvent.objects.filter(action="auth.lockout.cleared", actor=staff_user).count() == 1


@pytest.mark.slow
def test_admin_login_is_locked_with_a_429_too(client, staff_user, password):
    for _ in range(10):
        client.post("/admin/login/", {"username": staff_user.email, "password": WRONG})
    response = client.post("/admin/login/", {"username": staff_user.email, "password": password})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 3500


@pytest.mark.integration
@pytest.mark.slow
def test_the_lock_holds_while_redis_is_down(api_client, user, password, own_redis):
    fail(api_client, user.email, 5)
    own_redis.kill()
    fail(api_client, user.email, 5)
    assert_locked(login(api_client, user.email, password))
    assert AccessAttempt.objects.get(username=user.email).failures_since_start == 10


@pytest.mark.slow
def test_the_thresholds_follow_the_settings(api_client, user, password, settings):
    settings.LOCKOUT_FAILURE_LIMIT = 3
    settings.LOCKOUT_COOLOFF_SECONDS = 120
    responses = fail(api_client, user.email, 3)
    assert [r.status_code for r in responses] == [401, 401, 429]
    assert_locked(login(api_client, user.email, password), max_seconds=120)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=121))
    assert login(api_client, user.email, password).status_code == 200
