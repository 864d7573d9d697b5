"""A Redis outage: rate limits fail open for real (served, not broken), /readyz says so."""

from __future__ import annotations

import logging

import pytest

from tests.factories import UserFactory

pytestmark = pytest.mark.integration

LOGIN = "/api/v1/auth/login"


def test_killing_redis_mid_traffic_serves_every_request_uncounted_with_no_500(
    own_redis, rate_rules, api_client, caplog, db
):
    rate_rules(login="3/m")
    before = [api_client.post(LOGIN, {"email": "a@example.com"}, format="json") for _ in range(4)]
    assert [r.status_code for r in before] == [200, 200, 200, 429]

    own_redis.kill()
    api_client.force_authenticate(UserFactory())
    with caplog.at_level(logging.WARNING, logger="dashtam.ratelimit"):
        during = [api_client.post(LOGIN, {"email": "a@example.com"}, format="json") for _ in range(10)]
        during += [api_client.get("/api/v1/auth/sessions") for _ in range(5)]
        during += [api_client.get("/api/v1/no-such-route") for _ in range(3)]
        during += [api_client.get("/api/v1/providers/oauth/sandbox/callback") for _ in range(3)]

    statuses = [r.status_code for r in during]
    assert statuses == [200] * 15 + [404] * 3 + [200] * 3
    # Uncounted: no made-up numbers in the headers.
    assert not any(r.has_header("X-RateLimit-Remaining") for r in during)
    fail_open = [r for r in caplog.records if r.name == "dashtam.ratelimit" and "failing open" in r.getMessage()]
    assert len(fail_open) == 1


def test_readyz_reports_the_cache_degraded_but_stays_ready(own_redis, rate_rules, client, db):
    healthy = client.get("/readyz").json()
    assert healthy["checks"]["cache"] == "ok"

    own_redis.kill()
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"].startswith("degraded: unreachable")
    assert "rate limits fail open" in body["checks"]["cache"]
    assert body["checks"]["database"] == "ok"
