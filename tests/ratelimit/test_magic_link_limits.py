"""The magic-link rules: 5 a minute per IP, 3 per 15 minutes per address."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db
REQUEST = "/api/v1/auth/magic-link"


def ask(client, email, ip="192.0.2.1"):
    return client.post(REQUEST, {"email": email}, format="json", REMOTE_ADDR=ip)


def test_three_links_per_address_per_15_minutes_whatever_the_ip(api_client, real_rates):
    statuses = [ask(api_client, "target@example.com", ip=f"192.0.2.{i}").status_code for i in range(1, 5)]
    assert statuses == [202, 202, 202, 429]
    refused = ask(api_client, "target@example.com", ip="192.0.2.9")
    assert refused.json()["code"] == "RATE_LIMITED"
    assert 0 < int(refused["Retry-After"]) <= 15 * 60


def test_five_requests_a_minute_per_ip(api_client, real_rates):
    statuses = [ask(api_client, f"user{i}@example.com").status_code for i in range(6)]
    assert statuses == [202] * 5 + [429]
