"""New-device alerts, activity tracking without a write per request, and the daily clean-up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from sessions_mgmt.models import Session
from sessions_mgmt.tasks import cleanup_sessions
from tests.sessions.conftest import CHROME_MAC, FIREFOX_WINDOWS

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/auth/sessions"
REFRESH = "/api/v1/auth/refresh"


def test_login_from_a_new_device_sends_a_was_this_you_email(
    user, start_session, django_capture_on_commit_callbacks, settings
):
    settings.FRONTEND_URL = "https://app.example.com"
    with django_capture_on_commit_callbacks(execute=True):
        start_session(user, ua=CHROME_MAC)  # first login ever: nothing to compare with
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        start_session(user, ua=CHROME_MAC)  # same device again
    assert mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        start_session(user, ua=FIREFOX_WINDOWS)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [user.email]
    assert "Firefox" in message.subject
    assert "Was this you?" in message.body
    assert "https://app.example.com/settings/sessions" in message.body


def test_activity_is_written_at_most_once_per_resolution(
    user, start_session, client_for, django_assert_num_queries, settings
):
    settings.SESSION_LAST_USED_RESOLUTION = 60
    issued = start_session(user)
    client = client_for(issued)
    client.get(SESSIONS)  # warm the cache
    stale = timezone.now() - timedelta(minutes=5)
    Session.objects.filter(pk=issued.session.pk).update(last_used_at=stale)

    # Cached state still says "just used": no write at all, only the list query.
    with django_assert_num_queries(1):
        client.get(SESSIONS)
    assert Session.objects.get(pk=issued.session.pk).last_used_at == stale


def test_stale_activity_is_recorded_by_the_next_request(user, start_session, client_for):
    issued = start_session(user)
    stale = timezone.now() - timedelta(minutes=5)
    Session.objects.filter(pk=issued.session.pk).update(last_used_at=stale)
    client_for(issued).get(SESSIONS)  # cache empty: reads the stale time and touches
    touched = Session.objects.get(pk=issued.session.pk).last_used_at
    assert touched > stale
    client_for(issued).get(SESSIONS)
    assert Session.objects.get(pk=issued.session.pk).last_used_at == touched


def test_logins_refreshes_and_revocations_write_no_simplejwt_token_rows(user, start_session, api_client):
    """The session row's refresh_jti is the only record of the live refresh token."""
    issued = start_session(user)
    rotated = api_client.post(REFRESH, {"refresh": issued.refresh}, format="json")
    assert rotated.status_code == 200
    assert api_client.post(REFRESH, {"refresh": issued.refresh}, format="json").json()["code"] == "TOKEN_REUSED"
    assert (OutstandingToken.objects.count(), BlacklistedToken.objects.count()) == (0, 0)


def test_cleanup_deletes_old_sessions_and_legacy_token_rows_only(user, start_session, settings):
    settings.SESSION_RETENTION_DAYS = 90
    long_ago = timezone.now() - timedelta(days=91)
    old_revoked = start_session(user)
    Session.objects.filter(pk=old_revoked.session.pk).update(revoked_at=long_ago)
    old_expired = start_session(user)
    Session.objects.filter(pk=old_expired.session.pk).update(expires_at=long_ago)
    recent_revoked = start_session(user)
    Session.objects.filter(pk=recent_revoked.session.pk).update(revoked_at=timezone.now() - timedelta(days=10))
    live = start_session(user)
    # Rows an earlier release wrote into simplejwt's tables: one per session's token, one expired elsewhere.
    in_a_week = timezone.now() + timedelta(days=7)
    for issued in (old_revoked, old_expired, recent_revoked, live):
        OutstandingToken.objects.create(user=user, jti=issued.session.refresh_jti, token="", expires_at=in_a_week)
    BlacklistedToken.objects.create(token=OutstandingToken.objects.get(jti=old_revoked.session.refresh_jti))
    expired_token = OutstandingToken.objects.create(
        user=user, jti="expired-elsewhere", token="", expires_at=timezone.now() - timedelta(days=1)
    )
    BlacklistedToken.objects.create(token=expired_token)
    assert BlacklistedToken.objects.count() == 2

    result = cleanup_sessions()

    remaining = set(Session.objects.values_list("pk", flat=True))
    assert remaining == {recent_revoked.session.pk, live.session.pk}
    assert result == {"sessions": 2, "tokens": 5}  # 3 outstanding rows and the 2 blacklist rows on them
    assert BlacklistedToken.objects.count() == 0
    assert set(OutstandingToken.objects.values_list("jti", flat=True)) == {
        recent_revoked.session.refresh_jti, live.session.refresh_jti
    }
    # Running again finds nothing to do.
    assert cleanup_sessions() == {"sessions": 0, "tokens": 0}


def test_cleanup_is_scheduled_daily(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["sessions-cleanup"]
    assert entry["task"] == "sessions_mgmt.tasks.cleanup_sessions"
    assert entry["schedule"] == 24 * 3600


def test_saving_a_user_refreshes_the_cached_row(user, start_session, client_for):
    issued = start_session(user)
    client = client_for(issued)
    assert client.get(SESSIONS).status_code == 200
    user.is_active = False
    user.save()
    assert client.get(SESSIONS).status_code == 401


def test_location_comes_from_the_local_geoip_database(settings, monkeypatch, tmp_path):
    from types import SimpleNamespace

    from sessions_mgmt import devices

    class FakeReader:
        def metadata(self):
            return SimpleNamespace(database_type="GeoLite2-City")

        def city(self, ip):
            return SimpleNamespace(city=SimpleNamespace(name="Lisbon"), country=SimpleNamespace(name="Portugal"))

    settings.GEOIP_PATH = str(tmp_path / "GeoLite2-City.mmdb")
    monkeypatch.setattr(devices, "_reader", lambda path: FakeReader())
    assert devices.locate("81.193.0.1") == "Lisbon, Portugal"
    assert devices.locate("10.0.0.1") == "Unknown"  # private addresses are never looked up
    settings.GEOIP_PATH = ""
    assert devices.locate("81.193.0.1") == "Unknown"
