"""/metrics: guarded, and after a scripted session every metric of issue 17 is there, parsed
by prometheus_client's own text-format parser."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashtam.ratelimit.rule_table import DEFAULT_RATE_RULES
from providers.services import token_refresh
from tests.conftest import PASSWORD
from tests.factories import UserFactory
from tests.providers.conftest import client_for, connect

TOKEN = "m3tr1cs-scrape-token-0123456789abcdef"

pytestmark = pytest.mark.django_db

# Every metric the issue names (prometheus_client strips _total from counter family names).
EXPECTED = {
    "dashtam_http_requests": "request count by route and status",
    "dashtam_http_request_duration_seconds": "request latency by route and status",
    "dashtam_db_query_duration_seconds": "database timings",
    "dashtam_cache_operation_duration_seconds": "cache timings",
    "dashtam_logins": "logins by outcome",
    "dashtam_refresh_rotations": "refresh rotations",
    "dashtam_token_reuse_detections": "reuse detections",
    "dashtam_lockouts": "lockouts",
    "dashtam_ratelimit_refusals": "rate-limit refusals by rule",
    "dashtam_provider_calls": "provider calls by outcome",
    "dashtam_provider_call_duration_seconds": "provider call latency",
    "dashtam_circuit_breaker_state": "circuit-breaker state",
    "dashtam_provider_token_refresh_lag_seconds": "token refresh lag",
    "dashtam_celery_tasks": "Celery task outcomes",
    "dashtam_celery_queue_depth": "Celery queue depth",
}


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_ENABLED = True
    settings.METRICS_BEARER_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    return settings


def scrape(client) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    assert response["Cache-Control"] == "no-store"
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def value(families, name: str, suffix: str = "_total", **labels) -> float:
    total = 0.0
    for sample in families[name].samples:
        if sample.name == name + suffix and all(sample.labels.get(k) == v for k, v in labels.items()):
            total += sample.value
    return total


def test_metrics_are_not_public_without_a_token_or_network_configured(client, settings):
    settings.METRICS_BEARER_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_metrics_refuse_a_wrong_or_missing_token(client, metrics_on):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + TOKEN[:-1] + "x").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=TOKEN).status_code == 403
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + TOKEN[:-1] + "x").content
    assert b"dashtam_" not in body


def test_metrics_by_allowed_network(client, settings):
    settings.METRICS_BEARER_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.10").status_code == 403
    allowed = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert allowed.status_code == 200
    assert b"dashtam_http_requests_total" in allowed.content or b"dashtam_http_requests" in allowed.content


def test_metrics_off_means_no_route(client, metrics_on):
    metrics_on.METRICS_ENABLED = False
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


@pytest.mark.django_db(transaction=True)  # tasks enqueued on commit really run (eagerly)
def test_every_metric_of_the_issue_is_scraped_after_a_scripted_session(
        client, api_client, metrics_on, schwab, settings):
    settings.LOCKOUT_FAILURE_LIMIT = 3
    rules = {name: dict(rule) for name, rule in DEFAULT_RATE_RULES.items()}
    rules["register"]["rate"] = "1/h"
    settings.RATE_LIMIT_RULES = rules
    before = scrape(client)

    # A login that works, one that fails, a refresh, and the old refresh token again (reuse).
    user = UserFactory(password=PASSWORD)
    ok = api_client.post("/api/v1/auth/login", {"email": user.email, "password": PASSWORD}, format="json")
    assert ok.status_code == 200
    first_refresh = ok.json()["refresh"]
    assert api_client.post("/api/v1/auth/refresh", {"refresh": first_refresh}, format="json").status_code == 200
    assert api_client.post("/api/v1/auth/refresh", {"refresh": first_refresh}, format="json").status_code == 401
    # Failed logins until the account is locked.
    victim = UserFactory(password=PASSWORD)
    statuses = [api_client.post("/api/v1/auth/login", {"email": victim.email, "password": "Wrong-Passw0rd!"},
                                format="json").status_code for _ in range(4)]
    assert statuses[-1] == 429, statuses
    # A rate-limit refusal (register: 1/h).
    api_client.post("/api/v1/auth/register", {}, format="json")
    assert api_client.post("/api/v1/auth/register", {}, format="json").status_code == 429
    # A provider connection (token exchange) and a forced refresh: provider calls and a Celery task.
    owner = UserFactory(password=PASSWORD)
    connection_id = connect(client_for(owner), schwab)
    assert token_refresh(connection_id=connection_id, force=True).status == "refreshed"

    after = scrape(client)
    missing = [f"{name} ({what})" for name, what in EXPECTED.items() if name not in after]
    assert not missing, missing
    for name in EXPECTED:
        assert after[name].samples, f"{name} has no sample"

    def delta(name, suffix="_total", **labels):
        return value(after, name, suffix, **labels) - (value(before, name, suffix, **labels) if name in before else 0)

    assert delta("dashtam_logins", outcome="success") >= 1
    assert delta("dashtam_logins", outcome="failure") >= 2
    assert delta("dashtam_refresh_rotations") >= 1
    assert delta("dashtam_token_reuse_detections") >= 1
    assert delta("dashtam_lockouts") >= 1
    assert delta("dashtam_ratelimit_refusals", rule="register") >= 1
    assert delta("dashtam_provider_calls", provider="schwab", outcome="2xx") >= 2
    assert delta("dashtam_provider_call_duration_seconds", "_count", provider="schwab") >= 2
    assert delta("dashtam_provider_token_refreshes", outcome="refreshed") >= 1
    assert delta("dashtam_http_requests", route="api/v1/auth/login", method="POST", status="200") >= 1
    assert delta("dashtam_http_request_duration_seconds", "_count", route="api/v1/auth/login", status="429") >= 1
    assert delta("dashtam_db_query_duration_seconds", "_count") > 0
    assert delta("dashtam_cache_operation_duration_seconds", "_count") > 0
    assert delta("dashtam_celery_tasks") >= 1
    assert value(after, "dashtam_circuit_breaker_state", "", provider="schwab") == 0
    assert [s.labels["queue"] for s in after["dashtam_celery_queue_depth"].samples] == ["celery"]
    assert value(after, "dashtam_provider_token_refresh_lag_seconds", "") == 0
    # No label carries a secret or a raw path.
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert first_refresh not in text and user.email not in text and victim.email not in text


def test_labels_stay_bounded_whatever_the_client_sends(client, metrics_on):
    client.generic("FROBNICATE", "/api/v1/no/such/route/" + "x" * 50)
    client.get("/api/v1/auth/me/../../" + "y" * 40)
    families = scrape(client)
    labels = [s.labels for s in families["dashtam_http_requests"].samples]
    assert all("x" * 10 not in str(lab) and "y" * 10 not in str(lab) for lab in labels)
    assert {"route": "<unmatched>", "method": "OTHER", "status": "404"} in labels

