"""Admin for staff (no token ever shown; actions call services), start-up checks, list query counts."""

from __future__ import annotations

import pytest
from django.core import checks

from audit.models import AuditEvent
from providers.models import ConnectionStatus, ProviderConnection, ProviderToken
from tests.providers.conftest import connect, connected

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.mark.integration
def test_admin_lists_connections_with_state_and_never_a_token(staff_client, user, schwab):
    connection_id = connected(schwab, user)
    token = ProviderToken.objects.get()
    listing = staff_client.get("/admin/providers/providerconnection/")
    detail = staff_client.get(f"/admin/providers/providerconnection/{connection_id}/change/")
    assert listing.status_code == 200 and detail.status_code == 200
    page = listing.content.decode() + detail.content.decode()
    assert "active" in page and "closed" in page  # status and circuit state
    for issued in schwab.issued:
        assert issued["access_token"] not in page and issued["refresh_token"] not in page
    assert token.access_token_encrypted not in page and token.refresh_token_encrypted not in page
    assert staff_client.get("/admin/providers/providertoken/").status_code == 404


@pytest.mark.integration
def test_admin_force_refresh_and_revoke_call_the_services(staff_client, user, schwab):
    connection_id = connected(schwab, user)
    url = "/admin/providers/providerconnection/"
    response = staff_client.post(url, {"action": "force_refresh", "_selected_action": [connection_id]})
    assert response.status_code == 302
    assert ProviderToken.objects.get().refresh_count == 1
    response = staff_client.post(url, {"action": "revoke", "_selected_action": [connection_id]})
    assert response.status_code == 302
    assert ProviderConnection.objects.get().status == ConnectionStatus.REVOKED
    assert not ProviderToken.objects.exists()
    assert AuditEvent.objects.filter(action="provider.connection.revoked", target_id=connection_id).exists()
    assert AuditEvent.objects.filter(action="admin.action", extra__action="providers.revoke").exists()


def _provider_errors():
    return [m for m in checks.run_checks() if m.id and m.id.startswith("providers.")]


def test_a_partial_schwab_configuration_fails_at_start_up(settings):
    settings.SCHWAB_CLIENT_ID = "id"
    settings.SCHWAB_CLIENT_SECRET = ""
    settings.SCHWAB_REDIRECT_URI = ""
    errors = _provider_errors()
    assert [e.id for e in errors] == ["providers.E001"]
    assert "SCHWAB_CLIENT_SECRET" in errors[0].msg and "SCHWAB_REDIRECT_URI" in errors[0].msg


def test_bad_provider_tunables_are_named(settings):
    settings.SCHWAB_RATE_LIMIT = "lots"
    settings.HTTP_TIMEOUT_READ = 0
    messages = " ".join(e.msg for e in _provider_errors())
    assert "SCHWAB_RATE_LIMIT" in messages and "HTTP_TIMEOUT_READ" in messages


def test_the_default_configuration_passes():
    assert _provider_errors() == []


@pytest.mark.integration
@pytest.mark.slow
def test_connection_and_account_lists_do_not_grow_queries(
        auth_client, schwab, django_assert_max_num_queries, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(3):
            connect(auth_client, schwab, alias=f"A{i}")
    with django_assert_max_num_queries(8):
        body = auth_client.get("/api/v1/providers").json()
    assert len(body["results"]) == 3 and body["results"][0]["expires_at"]
    with django_assert_max_num_queries(8):
        assert len(auth_client.get("/api/v1/accounts").json()["results"]) == 3


@pytest.mark.integration
def test_admin_breach_rotation_replaces_the_tokens(staff_client, user, schwab,
                                                   django_capture_on_commit_callbacks):
    connection_id = connected(schwab, user)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post("/admin/providers/providerconnection/",
                                     {"action": "rotate_tokens", "_selected_action": [connection_id]})
    assert response.status_code == 302
    token = ProviderToken.objects.get()
    assert token.token_version == 2 and schwab.refresh_calls() == 1
    assert ProviderConnection.objects.get().min_token_version == 2


@pytest.mark.slow
def test_every_provider_endpoint_is_in_the_openapi_schema(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    paths = schema["paths"]
    for path, methods in {
        "/api/v1/provider-types": {"get"},
        "/api/v1/providers": {"get", "post"},
        "/api/v1/providers/{connection_id}": {"get", "patch", "delete"},
        "/api/v1/providers/{connection_id}/authorization": {"post"},
        "/api/v1/providers/{connection_id}/token-refresh": {"post"},
        "/api/v1/providers/{connection_id}/sync": {"post"},
        "/api/v1/providers/oauth/{provider_key}/callback": {"get"},
        "/api/v1/accounts": {"get"},
        "/api/v1/accounts/{account_id}": {"get"},
        "/api/v1/accounts/{account_id}/transactions": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
    assert paths["/api/v1/providers/oauth/{provider_key}/callback"]["get"].get("security") in (None, [], [{}])
    listed = paths["/api/v1/accounts/{account_id}/transactions"]["get"]["responses"]["200"]
    assert listed["content"]["application/json"]["schema"]["$ref"].endswith("PaginatedTransactionList")
