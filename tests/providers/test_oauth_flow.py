"""Connecting Schwab over real HTTP: authorize, call back, exchange, sync, read the data."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from providers.models import ConnectionStatus, FinancialAccount, OAuthState, ProviderConnection, ProviderToken
from tests.factories import UserFactory
from tests.providers.conftest import REDIRECT_URI, client_for, connect

pytestmark = pytest.mark.django_db


def test_connecting_schwab_stores_encrypted_tokens_and_syncs_accounts(
        auth_client, schwab, user, django_capture_on_commit_callbacks):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "Main"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "pending"
    url = body["authorization_url"]
    assert url.startswith(f"{schwab.url}/v1/oauth/authorize?")
    assert "response_type=code" in url and "client_id=test-client-id" in url

    params = schwab.follow_authorization(url)
    assert len(params["state"]) >= 43  # 32 random bytes, base64url
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.get("/api/v1/providers/oauth/schwab/callback", params,
                                   HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json() == {"outcome": "connected", "connection_id": body["id"],
                               "detail": "The provider is connected."}

    connection = ProviderConnection.objects.get(pk=body["id"])
    assert connection.status == ConnectionStatus.ACTIVE and connection.connected_at
    token = ProviderToken.objects.get(connection=connection)
    issued = schwab.issued[-1]
    raw = ProviderToken.objects.filter(pk=token.pk).values_list(
        "access_token_encrypted", "refresh_token_encrypted").get()
    for column in raw:
        assert issued["access_token"] not in column and issued["refresh_token"] not in column
        assert column.startswith(token.key_id + ".")
    # The state is stored hashed only.
    assert not OAuthState.objects.filter(state_hash=params["state"]).exists()

    # The sync ran on commit: accounts and transactions over the API.
    accounts = auth_client.get("/api/v1/accounts").json()["results"]
    assert len(accounts) == 1
    account = accounts[0]
    assert account["account_number_masked"] == "****5678"
    assert account["account_type"] == "MARGIN"
    assert account["positions"][0]["symbol"] == "AAPL"
    assert account["total_value"] == "2900.2500"
    txs = auth_client.get(f"/api/v1/accounts/{account['id']}/transactions").json()["results"]
    assert [t["provider_transaction_id"] for t in txs] == ["1002", "1001"]
    assert txs[1]["amount"] == "-1900.5000" and txs[1]["symbol"] == "AAPL"
    only_trades = auth_client.get(f"/api/v1/accounts/{account['id']}/transactions?type=TRADE").json()
    assert [t["type"] for t in only_trades["results"]] == ["TRADE"]
    in_range = auth_client.get(f"/api/v1/accounts/{account['id']}/transactions",
                               {"start": "2026-11-03T00:00:00Z", "end": "2026-11-30T00:00:00Z"}).json()
    assert [t["provider_transaction_id"] for t in in_range["results"]] == ["1002"]

    actions = set(AuditEvent.objects.filter(target_id=str(connection.pk)).values_list("action", flat=True))
    assert {"provider.connection.created", "provider.connection.connected", "provider.sync.completed"} <= actions
    # No token in any audit row or API response.
    everything = str(list(AuditEvent.objects.values_list("extra", flat=True))) + str(
        auth_client.get(f"/api/v1/providers/{connection.pk}").content)
    assert issued["access_token"] not in everything and issued["refresh_token"] not in everything


def test_sync_twice_does_not_duplicate(auth_client, schwab, django_capture_on_commit_callbacks):
    from providers.services import connection_sync

    with django_capture_on_commit_callbacks(execute=True):
        connection_id = connect(auth_client, schwab)
    connection_sync(connection_id=connection_id)
    connection_sync(connection_id=connection_id)
    account = FinancialAccount.objects.get(connection_id=connection_id)
    assert account.transactions.count() == 2
    assert FinancialAccount.objects.count() == 1


def test_callback_in_a_browser_redirects_to_the_frontend(auth_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    params = schwab.follow_authorization(created["authorization_url"])
    response = auth_client.get("/api/v1/providers/oauth/schwab/callback", params, HTTP_ACCEPT="text/html")
    assert response.status_code == 302
    assert response["Location"] == (
        f"https://app.example.test/connections/oauth-result?outcome=connected&connection_id={created['id']}")


def test_callback_needs_no_bearer_token(auth_client, api_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    params = schwab.follow_authorization(created["authorization_url"])
    response = api_client.get("/api/v1/providers/oauth/schwab/callback", params, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["outcome"] == "connected"


def test_a_replayed_state_is_refused_and_the_connection_stays_connected(auth_client, api_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    params = schwab.follow_authorization(created["authorization_url"])
    assert api_client.get("/api/v1/providers/oauth/schwab/callback", params,
                          HTTP_ACCEPT="application/json").status_code == 200
    again = api_client.get("/api/v1/providers/oauth/schwab/callback", params, HTTP_ACCEPT="application/json")
    assert again.status_code == 400
    assert again["Content-Type"] == "application/problem+json"
    assert again.json()["outcome"] == "replayed"
    connection = ProviderConnection.objects.get(pk=created["id"])
    assert connection.status == ConnectionStatus.ACTIVE
    assert connection.last_error_code == "oauth_state_replayed"
    assert AuditEvent.objects.filter(action="provider.oauth.failed", target_id=created["id"],
                                     extra__reason="oauth_state_replayed").exists()


def test_an_expired_state_is_refused(auth_client, api_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    params = schwab.follow_authorization(created["authorization_url"])
    from datetime import timedelta

    from django.utils import timezone

    OAuthState.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api_client.get("/api/v1/providers/oauth/schwab/callback", params, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and response.json()["outcome"] == "expired"
    connection = ProviderConnection.objects.get(pk=created["id"])
    assert connection.status == ConnectionStatus.PENDING
    assert connection.last_error_code == "oauth_state_expired"
    assert not ProviderToken.objects.exists()


def test_a_state_for_another_provider_is_refused(auth_client, api_client, schwab, settings):
    settings.SANDBOX_PROVIDER_ENABLED = True
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    params = schwab.follow_authorization(created["authorization_url"])
    response = api_client.get("/api/v1/providers/oauth/sandbox/callback", params, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and response.json()["outcome"] == "mismatch"
    assert not ProviderToken.objects.exists()


def test_an_unknown_or_missing_state_is_refused(api_client, schwab):
    for params in ({"code": "x", "state": "forged"}, {"code": "x"}):
        response = api_client.get("/api/v1/providers/oauth/schwab/callback", params,
                                  HTTP_ACCEPT="application/json")
        assert response.status_code == 400
        assert response.json()["outcome"] == "invalid_state"
        assert response.json()["code"] == "INVALID_TOKEN"


def test_declined_consent_is_recorded_on_the_connection(auth_client, api_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    params = schwab.follow_authorization(created["authorization_url"])
    response = api_client.get("/api/v1/providers/oauth/schwab/callback",
                              {"error": "access_denied", "state": params["state"]})
    assert response.status_code == 302
    assert "outcome=denied" in response["Location"]
    connection = ProviderConnection.objects.get(pk=created["id"])
    assert connection.last_error_code == "access_denied"
    assert connection.status == ConnectionStatus.PENDING


def test_a_failed_code_exchange_is_an_error_on_the_connection(auth_client, api_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    params = schwab.follow_authorization(created["authorization_url"])
    schwab.token_script = ["500"]
    response = api_client.get("/api/v1/providers/oauth/schwab/callback", params, HTTP_ACCEPT="application/json")
    assert response.status_code == 502
    assert response.json()["code"] == "PROVIDER_ERROR"
    connection = ProviderConnection.objects.get(pk=created["id"])
    assert connection.status == ConnectionStatus.ERROR
    assert connection.last_error_code == "server_error"
    assert len(schwab.token_calls) == 1  # a token request is never retried


def test_alias_is_unique_per_user(auth_client, schwab):
    first = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "Same"}, format="json")
    assert first.status_code == 201
    second = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "Same"}, format="json")
    assert second.status_code == 409 and second.json()["code"] == "CONFLICT"
    other = client_for(UserFactory())
    assert other.post("/api/v1/providers", {"provider_key": "schwab", "alias": "Same"},
                      format="json").status_code == 201


def test_unknown_and_unconfigured_providers_are_refused(auth_client, settings):
    settings.SCHWAB_CLIENT_ID = ""
    response = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"provider_key": ["This provider is not configured."]}
    response = auth_client.post("/api/v1/providers", {"provider_key": "nope", "alias": "A"}, format="json")
    assert response.status_code == 400 and "provider_key" in response.json()["errors"]
    types = {t["key"]: t for t in auth_client.get("/api/v1/provider-types").json()}
    assert types["schwab"]["configured"] is False


def test_reconnect_issues_a_new_state_and_kills_the_old_one(auth_client, api_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    old = schwab.follow_authorization(created["authorization_url"])
    again = auth_client.post(f"/api/v1/providers/{created['id']}/authorization")
    assert again.status_code == 200
    new = schwab.follow_authorization(again.json()["authorization_url"])
    assert api_client.get("/api/v1/providers/oauth/schwab/callback", old,
                          HTTP_ACCEPT="application/json").json()["outcome"] == "invalid_state"
    assert api_client.get("/api/v1/providers/oauth/schwab/callback", new,
                          HTTP_ACCEPT="application/json").json()["outcome"] == "connected"


def test_another_users_connection_and_accounts_are_404(auth_client, schwab, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        connection_id = connect(auth_client, schwab)
    account_id = auth_client.get("/api/v1/accounts").json()["results"][0]["id"]
    stranger = client_for(UserFactory())
    for method, path in (("get", f"/api/v1/providers/{connection_id}"),
                         ("patch", f"/api/v1/providers/{connection_id}"),
                         ("delete", f"/api/v1/providers/{connection_id}"),
                         ("post", f"/api/v1/providers/{connection_id}/sync"),
                         ("post", f"/api/v1/providers/{connection_id}/token-refresh"),
                         ("post", f"/api/v1/providers/{connection_id}/authorization"),
                         ("get", f"/api/v1/accounts/{account_id}"),
                         ("get", f"/api/v1/accounts/{account_id}/transactions")):
        response = getattr(stranger, method)(path, {"alias": "x"} if method == "patch" else None, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "NOT_FOUND"
    assert stranger.get("/api/v1/accounts").json()["results"] == []
    assert ProviderConnection.objects.filter(pk=connection_id).exists()


def test_delete_destroys_tokens_and_data_and_keeps_the_audit_trail(
        auth_client, schwab, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        connection_id = connect(auth_client, schwab)
    assert FinancialAccount.objects.count() == 1
    response = auth_client.delete(f"/api/v1/providers/{connection_id}")
    assert response.status_code == 204
    assert not ProviderConnection.objects.exists()
    assert not ProviderToken.objects.exists()
    assert not FinancialAccount.objects.exists()
    event = AuditEvent.objects.get(action="provider.connection.deleted", target_id=connection_id)
    assert event.extra["transactions"] == 2
    assert AuditEvent.objects.filter(target_id=connection_id, action="provider.connection.connected").exists()


def test_rename_a_connection(auth_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    response = auth_client.patch(f"/api/v1/providers/{created['id']}", {"alias": "Retirement"}, format="json")
    assert response.status_code == 200 and response.json()["alias"] == "Retirement"
    assert AuditEvent.objects.filter(action="provider.connection.updated", target_id=created["id"]).exists()


def test_redirect_uri_is_sent_to_the_provider(auth_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    assert "redirect_uri=" + REDIRECT_URI.replace(":", "%3A").replace("/", "%2F") in created["authorization_url"]


def test_alias_defaults_to_the_provider_name(auth_client, schwab):
    first = auth_client.post("/api/v1/providers", {"provider_key": "schwab"}, format="json")
    second = auth_client.post("/api/v1/providers", {"provider_key": "schwab"}, format="json")
    assert (first.status_code, second.status_code) == (201, 201)
    assert [first.json()["alias"], second.json()["alias"]] == ["Charles Schwab", "Charles Schwab 2"]


def test_expired_oauth_states_are_cleaned_up(auth_client, schwab):
    from datetime import timedelta

    from django.utils import timezone

    from providers.tasks import cleanup_oauth_states

    auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json")
    auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "B"}, format="json")
    OAuthState.objects.filter(connection__alias="A").update(expires_at=timezone.now() - timedelta(days=2))
    assert cleanup_oauth_states.delay().get() == 1
    assert list(OAuthState.objects.values_list("connection__alias", flat=True)) == ["B"]


def test_accounts_are_filtered_by_connection_and_type(auth_client, schwab, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = connect(auth_client, schwab, alias="One")
        connect(auth_client, schwab, alias="Two")
    assert len(auth_client.get("/api/v1/accounts").json()["results"]) == 2
    mine = auth_client.get("/api/v1/accounts", {"connection_id": first}).json()["results"]
    assert [a["connection_id"] for a in mine] == [first]
    assert auth_client.get("/api/v1/accounts", {"type": "margin"}).json()["results"]
    assert auth_client.get("/api/v1/accounts", {"type": "CASH"}).json()["results"] == []
    bad = auth_client.get("/api/v1/accounts", {"connection_id": "nope"})
    assert bad.status_code == 400 and "connection_id" in bad.json()["errors"]
    account_id = mine[0]["id"]
    bad_range = auth_client.get(f"/api/v1/accounts/{account_id}/transactions",
                                {"start": "2026-11-30T00:00:00Z", "end": "2026-11-01T00:00:00Z"})
    assert bad_range.status_code == 400 and "end" in bad_range.json()["errors"]


def test_transaction_filters_accept_dates_and_common_spellings(auth_client, schwab,
                                                               django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        connect(auth_client, schwab)
    account_id = auth_client.get("/api/v1/accounts").json()["results"][0]["id"]
    url = f"/api/v1/accounts/{account_id}/transactions"

    def ids(params):
        response = auth_client.get(url, params)
        assert response.status_code == 200, response.content
        return [t["provider_transaction_id"] for t in response.json()["results"]]

    assert ids({"start": "2026-11-05", "end": "2026-11-05"}) == ["1002"]  # a whole day
    assert ids({"start_date": "2026-11-01", "end_date": "2026-11-01"}) == ["1001"]
    assert ids({"types": "dividend_or_interest"}) == ["1002"]
    assert ids({"type": "TRADE,DIVIDEND_OR_INTEREST"}) == ["1002", "1001"]
    assert auth_client.get(url, {"start": "yesterday"}).status_code == 400


def test_a_deactivated_users_authorization_in_flight_does_not_connect(auth_client, api_client, schwab, user):
    """A reconnect of a revoked connection, then deactivation: the late callback must not connect."""
    from accounts.services import user_deactivate
    from providers.services import connection_revoke

    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    connection_revoke(connection=ProviderConnection.objects.get(pk=created["id"]), reason="admin")
    url = auth_client.post(f"/api/v1/providers/{created['id']}/authorization").json()["authorization_url"]
    params = schwab.follow_authorization(url)
    user_deactivate(user=user, reason="staff")

    response = api_client.get("/api/v1/providers/oauth/schwab/callback", params, HTTP_ACCEPT="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "INVALID_TOKEN"
    assert schwab.token_calls == []
    assert not ProviderToken.objects.exists()
    assert ProviderConnection.objects.get(pk=created["id"]).status == ConnectionStatus.REVOKED
    assert not OAuthState.objects.filter(used_at__isnull=True).exists()


def test_the_callback_refuses_a_state_whose_user_is_inactive(auth_client, api_client, schwab, user):
    from accounts.models import User

    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    params = schwab.follow_authorization(created["authorization_url"])
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = api_client.get("/api/v1/providers/oauth/schwab/callback", params, HTTP_ACCEPT="application/json")

    assert response.status_code == 400 and response.json()["outcome"] == "invalid_state"
    assert schwab.token_calls == []
    assert not ProviderToken.objects.exists()
    assert OAuthState.objects.get().used_at is not None
    assert AuditEvent.objects.filter(action="provider.oauth.failed", target_id=created["id"],
                                     extra__reason="oauth_state_user_inactive").exists()


def test_a_rename_racing_another_to_the_same_alias_is_a_conflict_not_a_500(auth_client, schwab, monkeypatch):
    from django.db.models.query import QuerySet

    first = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    second = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "B"}, format="json").json()
    # The other rename commits between the uniqueness check and the save.
    monkeypatch.setattr(QuerySet, "exists", lambda self: False)
    response = auth_client.patch(f"/api/v1/providers/{second['id']}", {"alias": "A"}, format="json")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "CONFLICT"
    monkeypatch.undo()
    assert ProviderConnection.objects.get(pk=second["id"]).alias == "B"
    assert ProviderConnection.objects.get(pk=first["id"]).alias == "A"


def test_a_state_used_by_a_concurrent_callback_meanwhile_is_a_replay(auth_client, api_client, schwab, monkeypatch):
    """Using the state is a compare-and-swap: a callback that read it before another one used it
    (SQLite ignores the row lock) must not connect a second time or downgrade the connection."""
    from django.db.models.query import QuerySet
    from django.utils import timezone

    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    params = schwab.follow_authorization(created["authorization_url"])
    real_first = QuerySet.first

    def first_then_used_elsewhere(self):
        row = real_first(self)
        if isinstance(row, OAuthState) and row.used_at is None:
            OAuthState.objects.filter(pk=row.pk).update(used_at=timezone.now())
            ProviderConnection.objects.filter(pk=row.connection_id).update(status=ConnectionStatus.ACTIVE)
        return row

    monkeypatch.setattr(QuerySet, "first", first_then_used_elsewhere)
    response = api_client.get("/api/v1/providers/oauth/schwab/callback", params, HTTP_ACCEPT="application/json")
    monkeypatch.undo()
    assert response.status_code == 400 and response.json()["outcome"] == "replayed"
    assert not ProviderToken.objects.exists()
    assert ProviderConnection.objects.get(pk=created["id"]).status == ConnectionStatus.ACTIVE
