"""HTTP discipline: retries for idempotent calls, Retry-After, outbound budget, circuit breaker."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from providers import breaker
from providers.clients.schwab import SchwabClient
from providers.exceptions import ProviderError, ProviderRequestRejected, ProviderUnavailable
from providers.models import ProviderConnection, ProviderToken
from providers.services import connection_sync, token_refresh
from tests.providers.conftest import connect, connected

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection_id(user, schwab):
    return connected(schwab, user)


@pytest.mark.integration
def test_idempotent_reads_are_retried_after_429_and_500(schwab, connection_id):
    schwab.data_script = ["429", "500"]
    result = connection_sync(connection_id=connection_id)
    assert result.status == "synced" and result.transactions == 2
    assert schwab.data_calls[:3] == ["/trader/v1/accounts/accountNumbers"] * 3


@pytest.mark.integration
def test_reads_give_up_after_the_configured_retries(settings, schwab, connection_id):
    settings.HTTP_MAX_RETRIES = 2
    settings.CIRCUIT_BREAKER_FAILURE_THRESHOLD = 50
    schwab.data_script = ["500"] * 3
    result = connection_sync(connection_id=connection_id)
    assert result.status == "failed" and result.error_code == "server_error"
    assert len(schwab.data_calls) == 3
    assert ProviderConnection.objects.get(pk=connection_id).last_error_code == "server_error"
    assert AuditEvent.objects.filter(action="provider.sync.failed", target_id=connection_id).exists()


@pytest.mark.integration
def test_a_long_retry_after_is_not_waited_for(settings, schwab):
    settings.HTTP_RETRY_AFTER_MAX_SECONDS = 0.5
    schwab.server.expect_oneshot_request("/trader/v1/accounts/accountNumbers").respond_with_data(
        "{}", status=429, headers={"Retry-After": "120"}, content_type="application/json")
    client = SchwabClient.from_settings()
    with pytest.raises(ProviderUnavailable) as caught:
        client.request("GET", "/trader/v1/accounts/accountNumbers")
    assert caught.value.retry_after == 120


@pytest.mark.integration
def test_a_retry_after_date_without_a_zone_is_read_as_utc(settings, schwab):
    # RFC 5322 "-0000" gives a naive datetime; comparing it with an aware one used to crash.
    from datetime import timedelta
    from email.utils import format_datetime

    settings.HTTP_RETRY_AFTER_MAX_SECONDS = 0.5
    when = format_datetime((timezone.now() + timedelta(seconds=120)).replace(tzinfo=None))
    assert when.endswith("-0000")
    schwab.server.expect_oneshot_request("/trader/v1/accounts/accountNumbers").respond_with_data(
        "{}", status=429, headers={"Retry-After": when}, content_type="application/json")
    client = SchwabClient.from_settings()
    with pytest.raises(ProviderUnavailable) as caught:
        client.request("GET", "/trader/v1/accounts/accountNumbers")
    assert 100 <= caught.value.retry_after <= 121


@pytest.mark.integration
def test_slow_reads_time_out_and_are_retried(settings, schwab, connection_id):
    settings.HTTP_TIMEOUT_READ = 0.2
    schwab.data_script = ["hang"]
    assert connection_sync(connection_id=connection_id).status == "synced"


@pytest.mark.integration
def test_the_outbound_budget_is_shared_and_refuses_when_spent(settings, schwab):
    settings.SCHWAB_RATE_LIMIT = "2/m"
    settings.PROVIDER_REFRESH_RESERVED_SHARE = 0  # the whole budget, for this test of sharing it
    client = SchwabClient.from_settings()
    other_process_client = SchwabClient.from_settings()
    for c in (client, other_process_client):
        with pytest.raises(ProviderRequestRejected):  # reached the provider (no token: 401)
            c.request("GET", "/trader/v1/accounts/accountNumbers")
    with pytest.raises(ProviderUnavailable) as caught:
        client.request("GET", "/trader/v1/accounts/accountNumbers")
    assert caught.value.code == "provider_rate_limited" and caught.value.retry_after >= 1
    assert len(schwab.data_calls) == 2


@pytest.mark.integration
def test_the_circuit_opens_after_consecutive_failures_and_answers_503(
        settings, auth_client, schwab, connection_id, api_client):
    from datetime import timedelta

    # Obtained an hour ago: a forced refresh must call the provider (a fresh one would not).
    ProviderConnection.objects.filter(pk=connection_id).update(last_refreshed_at=timezone.now() - timedelta(hours=1))
    settings.CIRCUIT_BREAKER_FAILURE_THRESHOLD = 3
    settings.CIRCUIT_BREAKER_RESET_SECONDS = 30
    settings.HTTP_MAX_RETRIES = 0
    client = SchwabClient.from_settings()
    schwab.data_script = ["500"] * 3
    for _ in range(3):
        with pytest.raises(ProviderError):
            client.request("GET", "/trader/v1/accounts/accountNumbers")
    assert breaker.state("schwab").state == breaker.OPEN
    calls = len(schwab.data_calls)
    with pytest.raises(ProviderUnavailable):
        client.request("GET", "/trader/v1/accounts/accountNumbers")
    assert len(schwab.data_calls) == calls  # refused without touching the network

    sync = auth_client.post(f"/api/v1/providers/{connection_id}/sync")
    assert sync.status_code == 503 and sync.json()["code"] == "PROVIDER_UNAVAILABLE"
    assert 1 <= int(sync["Retry-After"]) <= 30
    refresh = auth_client.post(f"/api/v1/providers/{connection_id}/token-refresh")
    assert refresh.status_code == 503 and refresh.json()["code"] == "PROVIDER_UNAVAILABLE"
    assert "Retry-After" in refresh
    # Not the connection's fault: no failure counted.
    assert ProviderConnection.objects.get(pk=connection_id).consecutive_failures == 0

    ready = api_client.get("/readyz").json()
    assert ready["circuit_breakers"]["schwab"]["state"] == "open"


@pytest.mark.integration
def test_half_open_lets_one_probe_through_and_a_success_closes(settings, schwab, monkeypatch):
    settings.CIRCUIT_BREAKER_FAILURE_THRESHOLD = 1
    settings.CIRCUIT_BREAKER_RESET_SECONDS = 30
    settings.HTTP_MAX_RETRIES = 0
    client = SchwabClient.from_settings()
    schwab.data_script = ["500"]
    with pytest.raises(ProviderError):
        client.request("GET", "/trader/v1/accounts/accountNumbers")
    assert breaker.state("schwab").state == breaker.OPEN
    real_time = breaker.time.time
    monkeypatch.setattr(breaker.time, "time", lambda: real_time() + 31)  # the open period is over
    assert breaker.state("schwab").state == breaker.HALF_OPEN
    assert breaker.allow("schwab")[0] is True
    assert breaker.allow("schwab")[0] is False  # only one probe
    breaker.record_success("schwab")
    assert breaker.state("schwab").state == breaker.CLOSED


@pytest.mark.integration
def test_a_failed_probe_opens_the_circuit_again(settings, schwab, monkeypatch):
    settings.CIRCUIT_BREAKER_FAILURE_THRESHOLD = 1
    breaker.record_failure("schwab")
    real_time = breaker.time.time
    monkeypatch.setattr(breaker.time, "time", lambda: real_time() + settings.CIRCUIT_BREAKER_RESET_SECONDS + 1)
    assert breaker.allow("schwab")[0] is True
    breaker.record_failure("schwab")
    assert breaker.state("schwab").state == breaker.OPEN


@pytest.mark.integration
def test_client_errors_do_not_open_the_circuit(settings, schwab):
    settings.CIRCUIT_BREAKER_FAILURE_THRESHOLD = 1
    client = SchwabClient.from_settings()
    with pytest.raises(ProviderError) as caught:
        client.request("GET", "/trader/v1/accounts/accountNumbers", access_token="wrong")
    assert caught.value.status == 401
    assert breaker.state("schwab").state == breaker.CLOSED


@pytest.mark.integration
def test_token_refresh_is_a_post_and_never_retried(settings, schwab, connection_id):
    schwab.token_script = ["500"]
    ProviderToken.objects.update(expires_at=timezone.now())
    assert token_refresh(connection_id=connection_id).status == "failed"
    assert schwab.refresh_calls() == 1


@pytest.mark.integration
def test_errors_never_carry_tokens(schwab, connection_id):
    schwab.token_script = ["invalid_grant"]
    ProviderToken.objects.update(expires_at=timezone.now())
    token_refresh(connection_id=connection_id)
    connection = ProviderConnection.objects.get(pk=connection_id)
    for issued in schwab.issued:
        for value in (issued["access_token"], issued.get("refresh_token", "")):
            assert value not in connection.last_error_message
            assert value not in str(list(AuditEvent.objects.values_list("extra", flat=True)))


@pytest.mark.integration
def test_sync_refreshes_once_when_the_access_token_was_revoked_early(schwab, connection_id):
    schwab.access_tokens.clear()  # the provider forgot every access token it issued
    result = connection_sync(connection_id=connection_id)
    assert result.status == "synced"
    assert schwab.refresh_calls() == 1
    assert ProviderToken.objects.get(connection_id=connection_id).refresh_count == 1


@pytest.mark.integration
def test_logs_never_carry_tokens_or_the_client_secret(auth_client, schwab, caplog):
    import logging

    from tests.providers.conftest import CLIENT_SECRET

    caplog.set_level(logging.DEBUG)
    connection_id = connect(auth_client, schwab, alias="Logged")
    schwab.token_script = ["500", "invalid_grant"]
    ProviderToken.objects.filter(connection_id=connection_id).update(expires_at=timezone.now())
    token_refresh(connection_id=connection_id)
    token_refresh(connection_id=connection_id)
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records
    secrets_seen = [CLIENT_SECRET] + [v for issued in schwab.issued
                                      for v in (issued["access_token"], issued.get("refresh_token"), ) if v]
    for value in secrets_seen:
        assert value not in text


def _proxy_env(monkeypatch, **values):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_the_session_takes_proxies_and_the_ca_bundle_from_the_environment_once(monkeypatch):
    from providers.clients.base import ProviderSession

    _proxy_env(monkeypatch, HTTPS_PROXY="http://proxy.internal:3128",
               NO_PROXY="localhost,.bypass.test,10.0.0.0/8", REQUESTS_CA_BUNDLE="/etc/ssl/custom.pem")
    session = ProviderSession()
    assert session.verify == "/etc/ssl/custom.pem"
    assert session.proxies_for("https://api.schwabapi.com/v1/oauth/token")["https"] == "http://proxy.internal:3128"
    assert session.proxies_for("https://api.bypass.test/v1/oauth/token") == {}
    assert session.proxies_for("https://10.1.2.3/v1/oauth/token") == {}
    assert session.proxies_for("http://localhost:8000/x") == {}
    # Read when the session was made, not on every request.
    monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere.internal:1")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/tmp/other.pem")
    assert session.proxies_for("https://api.schwabapi.com/v1/other")["https"] == "http://proxy.internal:3128"
    assert session.verify == "/etc/ssl/custom.pem"

    _proxy_env(monkeypatch, CURL_CA_BUNDLE="/etc/ssl/curl.pem")
    assert ProviderSession().verify == "/etc/ssl/curl.pem"
    _proxy_env(monkeypatch)
    plain = ProviderSession()
    assert plain.verify is True and plain.proxies_for("https://api.schwabapi.com/x") == {}


@pytest.mark.integration
def test_calls_go_through_the_proxy_unless_no_proxy_names_the_host(monkeypatch, schwab):
    from providers.clients.base import ProviderSession

    # A proxy nobody listens on: a call routed through it fails to connect.
    _proxy_env(monkeypatch, HTTP_PROXY="http://127.0.0.1:9")
    client = SchwabClient.from_settings()
    client.session = ProviderSession()
    with pytest.raises(ProviderError) as caught:
        client.request("GET", "/trader/v1/accounts/accountNumbers")
    assert caught.value.code == "connection_error"
    assert schwab.data_calls == []

    _proxy_env(monkeypatch, HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1")
    client.session = ProviderSession()
    with pytest.raises(ProviderRequestRejected):  # reached the provider (no token: 401)
        client.request("GET", "/trader/v1/accounts/accountNumbers")
    assert len(schwab.data_calls) == 1
