"""With Redis gone, the database answers: requests keep working and revoked sessions stay refused."""

from __future__ import annotations

import pytest

from sessions_mgmt.services import session_revoke

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

SESSIONS = "/api/v1/auth/sessions"


def test_authentication_survives_a_redis_outage_without_failing_open(own_redis, user, start_session, client_for):
    from django.core.cache import cache

    from sessions_mgmt import revocation

    live, revoked_before, revoked_during = start_session(user), start_session(user), start_session(user)
    for issued in (live, revoked_before, revoked_during):
        assert client_for(issued).get(SESSIONS).status_code == 200
    # The states really are cached in this Redis now.
    assert cache.get(revocation.session_key(live.session.pk)) is not None

    assert session_revoke(session=revoked_before.session, reason="test") is True
    assert client_for(revoked_before).get(SESSIONS).status_code == 401

    own_redis.kill()

    assert client_for(live).get(SESSIONS).status_code == 200
    assert client_for(revoked_before).get(SESSIONS).json()["code"] == "SESSION_REVOKED"
    # Revoking while Redis is down still takes effect at once.
    assert session_revoke(session=revoked_during.session, reason="test") is True
    response = client_for(revoked_during).get(SESSIONS)
    assert response.status_code == 401
    assert response.json()["code"] == "SESSION_REVOKED"
    assert client_for(live).get(SESSIONS).status_code == 200
    # Refresh works without Redis too, and the new access token is accepted.
    rotated = client_for(live).post("/api/v1/auth/refresh", {"refresh": live.refresh}, format="json")
    assert rotated.status_code == 200
    fresh = client_for(live)
    fresh.credentials(HTTP_AUTHORIZATION=f"Bearer {rotated.json()['access']}")
    assert fresh.get(SESSIONS).status_code == 200


def test_a_stale_cache_entry_is_ignored_after_a_failed_revocation_write(own_redis, user, start_session, client_for):
    """A revocation that could not reach Redis changes the cache generation once Redis answers again."""
    from django.utils import timezone

    from sessions_mgmt import revocation
    from sessions_mgmt.models import Session

    issued = start_session(user)
    client = client_for(issued)
    assert client.get(SESSIONS).status_code == 200  # "active" is cached

    # Simulate a revocation whose cache write failed (e.g. a network blip) while the
    # stale "active" entry survived in Redis.
    revocation._revocation_write_failed(RuntimeError("blip"))
    revocation._backoff.reset()  # the cache answers again
    Session.objects.filter(pk=issued.session.pk).update(revoked_at=timezone.now())

    assert client.get(SESSIONS).json()["code"] == "SESSION_REVOKED"


def test_a_revoked_entry_outlives_every_access_token(
    own_redis, user, start_session, settings, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    from sessions_mgmt import revocation

    issued = start_session(user)
    with django_capture_on_commit_callbacks(execute=True):
        session_revoke(session=issued.session, reason="test")
    key = revocation.session_key(issued.session.pk)
    generation, state = cache.get(key)
    assert state.revoked is True
    assert cache.ttl(key) >= settings.ACCESS_TOKEN_LIFETIME


def test_a_cache_that_reads_but_refuses_writes_is_not_trusted_after_a_failed_revocation_write(
        own_redis, user, start_session, client_for, settings):
    """Redis answering reads but refusing writes (out of memory, a read-only replica) cannot take
    the generation change it is owed, so what it holds is not used."""
    import redis
    from django.utils import timezone

    from sessions_mgmt import revocation
    from sessions_mgmt.models import Session

    settings.RATELIMIT_ENABLE = False  # a plain read, which Redis still answers when out of memory
    issued = start_session(user)
    client = client_for(issued)
    assert client.get(SESSIONS).status_code == 200  # "active" is cached
    revocation._revocation_write_failed(RuntimeError("blip"))
    revocation._backoff.reset()
    Session.objects.filter(pk=issued.session.pk).update(revoked_at=timezone.now())
    server = redis.Redis.from_url(own_redis.url)
    server.config_set("maxmemory-policy", "noeviction")
    server.config_set("maxmemory", 1)  # every write is refused with OOM from now on

    assert client.get(SESSIONS).json()["code"] == "SESSION_REVOKED"
    assert revocation._state["pending_generation_bump"] is True  # still owed, paid once Redis takes writes

    server.config_set("maxmemory", 0)
    revocation._backoff.reset()
    assert client.get(SESSIONS).json()["code"] == "SESSION_REVOKED"
    assert revocation._state["pending_generation_bump"] is False
