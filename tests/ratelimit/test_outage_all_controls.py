"""Killing Redis degrades to unlimited, never to broken and never to unauthenticated.

One flow across the three controls that use Redis: rate limits fail open, while
session revocation and the lockout (both backed by the database) keep refusing.
"""

from __future__ import annotations

import pytest

from tests.factories import UserFactory

pytestmark = pytest.mark.integration

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
LOGOUT = "/api/v1/auth/logout"


def log_in(client, email, password):
    response = client.post(LOGIN, {"email": email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def bearer(client, tokens):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_redis_outage_keeps_revocation_and_lockout_and_drops_only_rate_limits(
    own_redis, real_rates, api_client, user, password, settings
):
    real_rates(login="4/m")
    settings.LOCKOUT_FAILURE_LIMIT = settings.AXES_FAILURE_LIMIT = 3
    locked = UserFactory(password=password)
    for _ in range(3):
        api_client.post(LOGIN, {"email": locked.email, "password": "Wrong-Horse-1-Battery"}, format="json")
    ended = log_in(api_client, user.email, password)  # the 4th login of this minute: the budget is spent
    assert api_client.post(LOGIN, {"email": user.email, "password": password}, format="json").status_code == 429

    # A session ended while Redis is up...
    bearer(api_client, ended)
    assert api_client.post(LOGOUT, {"refresh": ended["refresh"]}, format="json").status_code == 204

    own_redis.kill()
    responses = []

    # Rate limits fail open: the spent login budget no longer refuses.
    api_client.credentials()
    fresh = [api_client.post(LOGIN, {"email": user.email, "password": password}, format="json")
             for _ in range(3)]
    responses += fresh
    assert [r.status_code for r in fresh] == [200, 200, 200]
    live = fresh[0].json()

    # ...stays refused, and a live session still works.
    bearer(api_client, ended)
    refused = api_client.get(ME)
    responses.append(refused)
    assert refused.status_code == 401
    bearer(api_client, live)
    served = api_client.get(ME)
    responses.append(served)
    assert served.status_code == 200

    # A session ended during the outage is refused at once.
    assert api_client.post(LOGOUT, {"refresh": live["refresh"]}, format="json").status_code == 204
    after_logout = api_client.get(ME)
    responses.append(after_logout)
    assert after_logout.status_code == 401

    # The lockout holds, even with the right password.
    api_client.credentials()
    lock = api_client.post(LOGIN, {"email": locked.email, "password": password}, format="json")
    responses.append(lock)
    assert lock.status_code == 429
    assert lock.json()["code"] == "ACCOUNT_LOCKED"

    assert not any(r.status_code >= 500 for r in responses)
