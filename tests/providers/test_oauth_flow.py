"""Connecting Schwab over real HTTP: authorize, call back, exchange, sync, read the data."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from audit.models import AuditEvent
from providers.models import ConnectionStatus, FinancialAccount, OAuthState, ProviderConnection, ProviderToken
from tests.factories import UserFactory
from tests.providers.conftest import REDIRECT_URI, callback, client_for, complete, connect

pytestmark = pytest.mark.django_db


@pytest.mark.integration
@pytest.mark.slow
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
    landing = callback(auth_client, params)
    with django_capture_on_commit_callbacks(execute=True):
        response = complete(auth_client, landing)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
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


@pytest.mark.integration
@pytest.mark.slow
def test_sync_twice_does_not_duplicate(auth_client, schwab, django_capture_on_commit_callbacks):
    from providers.services import connection_sync

    with django_capture_on_commit_callbacks(execute=True):
        connection_id = connect(auth_client, schwab)
    connection_sync(connection_id=connection_id)
    connection_sync(connection_id=connection_id)
    account = FinancialAccount.objects.get(connection_id=connection_id)
    assert account.transactions.count() == 2
    assert FinancialAccount.objects.count() == 1


@pytest.mark.integration
def test_the_callback_only_redirects_to_the_frontend_with_the_code(api_client, auth_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    params = schwab.follow_authorization(created["authorization_url"])
    # Public: the browser coming back from the provider has no bearer token. JSON or not, it redirects.
    for accept in ("text/html", "application/json"):
        response = api_client.get("/api/v1/providers/oauth/schwab/callback", params, HTTP_ACCEPT=accept)
        assert response.status_code == 302
        assert response["Location"] == (
            "https://app.example.test/connections/callback?"
            + urlencode({"provider": "schwab", "state": params["state"], "code": params["code"]}))
        assert response["Cache-Control"] == "no-store"
        assert response["Referrer-Policy"] == "no-referrer"
    # Nothing was exchanged or spent: the connection waits for its user's completion.
    assert schwab.token_calls == []
    assert OAuthState.objects.get().used_at is None
    assert ProviderConnection.objects.get(pk=created["id"]).status == ConnectionStatus.PENDING
    assert not AuditEvent.objects.filter(action__in=["provider.connection.connected", "provider.oauth.failed"])


@pytest.mark.integration
def test_the_callback_passes_an_error_on_instead_of_a_code(api_client, schwab):
    response = api_client.get("/api/v1/providers/oauth/schwab/callback",
                              {"error": "access_denied", "state": "s", "code": "ignored"})
    assert response.status_code == 302
    assert response["Location"].endswith("?provider=schwab&state=s&error=access_denied")


@pytest.mark.integration
def test_completing_needs_the_bearer_token_of_a_signed_in_user(api_client, auth_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    landing = callback(api_client, schwab.follow_authorization(created["authorization_url"]))
    response = complete(api_client, landing)
    assert response.status_code == 401 and response.json()["code"] == "NOT_AUTHENTICATED"
    assert schwab.token_calls == [] and OAuthState.objects.get().used_at is None


@pytest.mark.integration
def test_another_users_state_is_spent_refused_and_leaves_the_connection_pending(
        auth_client, user, schwab, django_capture_on_commit_callbacks):
    """The hijack: an attacker sends their authorization URL to a victim, who approves at the
    genuine provider. The victim's completion must not land the victim's tokens on the
    attacker's connection, and the attacker cannot use the state afterwards either."""
    attacker = client_for(UserFactory())
    created = attacker.post("/api/v1/providers", {"provider_key": "schwab", "alias": "Bait"}, format="json").json()
    landing = callback(auth_client, schwab.follow_authorization(created["authorization_url"]))

    with django_capture_on_commit_callbacks(execute=True):
        victim = complete(auth_client, landing)  # the victim's front end, with the victim's bearer

    assert victim.status_code == 400
    assert victim["Content-Type"] == "application/problem+json"
    body = victim.json()
    assert body["code"] == "INVALID_TOKEN" and body["outcome"] == "invalid_state"
    assert body["connection_id"] is None  # the attacker's connection is not named
    assert schwab.token_calls == []  # the victim's code was never exchanged
    assert not ProviderToken.objects.exists()
    connection = ProviderConnection.objects.get(pk=created["id"])
    assert connection.status == ConnectionStatus.PENDING
    assert connection.last_error_code == "" and connection.connected_at is None
    assert OAuthState.objects.get().used_at is not None  # spent
    event = AuditEvent.objects.get(action="provider.oauth.failed", target_id=created["id"])
    assert event.outcome == "denied" and event.extra["reason"] == "oauth_state_wrong_user"
    assert event.actor_id == user.pk

    # The attacker, handed the victim's code and state, finds the state spent.
    again = complete(attacker, landing)
    assert again.status_code == 400 and again.json()["outcome"] == "replayed"
    assert schwab.token_calls == [] and not ProviderToken.objects.exists()
    assert ProviderConnection.objects.get(pk=created["id"]).status == ConnectionStatus.PENDING
    assert not FinancialAccount.objects.exists()


@pytest.mark.integration
def test_a_replayed_state_is_refused_and_the_connection_stays_connected(auth_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    landing = callback(auth_client, schwab.follow_authorization(created["authorization_url"]))
    assert complete(auth_client, landing).status_code == 200
    again = complete(auth_client, landing)
    assert again.status_code == 400
    assert again["Content-Type"] == "application/problem+json"
    assert again.json()["code"] == "INVALID_TOKEN" and again.json()["outcome"] == "replayed"
    assert len(schwab.token_calls) == 1
    connection = ProviderConnection.objects.get(pk=created["id"])
    assert connection.status == ConnectionStatus.ACTIVE
    assert connection.last_error_code == "oauth_state_replayed"
    assert AuditEvent.objects.filter(action="provider.connection.connected", target_id=created["id"]).count() == 1
    assert AuditEvent.objects.filter(action="provider.oauth.failed", target_id=created["id"],
                                     extra__reason="oauth_state_replayed").exists()


@pytest.mark.integration
def test_an_expired_state_is_refused(auth_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    landing = callback(auth_client, schwab.follow_authorization(created["authorization_url"]))
    from datetime import timedelta

    from django.utils import timezone

    OAuthState.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = complete(auth_client, landing)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_TOKEN" and response.json()["outcome"] == "expired"
    connection = ProviderConnection.objects.get(pk=created["id"])
    assert connection.status == ConnectionStatus.PENDING
    assert connection.last_error_code == "oauth_state_expired"
    assert not ProviderToken.objects.exists() and schwab.token_calls == []
    assert OAuthState.objects.get().used_at is not None
    assert AuditEvent.objects.filter(action="provider.oauth.failed", target_id=created["id"],
                                     extra__reason="oauth_state_expired").exists()


@pytest.mark.integration
def test_a_state_for_another_provider_is_refused(auth_client, schwab, settings):
    settings.SANDBOX_PROVIDER_ENABLED = True
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    landing = callback(auth_client, schwab.follow_authorization(created["authorization_url"]))
    response = complete(auth_client, landing, provider_key="sandbox")
    assert response.status_code == 400 and response.json()["outcome"] == "mismatch"
    assert not ProviderToken.objects.exists()


@pytest.mark.integration
def test_an_unknown_or_missing_state_is_refused(auth_client, user, schwab):
    response = auth_client.post("/api/v1/providers/oauth/schwab/complete", {"code": "x", "state": "forged"},
                                format="json")
    assert response.status_code == 400
    assert response.json()["outcome"] == "invalid_state"
    assert response.json()["code"] == "INVALID_TOKEN"
    assert AuditEvent.objects.filter(action="provider.oauth.failed", actor_id=user.pk,
                                     extra__reason="unknown_state").exists()
    for body in ({"code": "x"}, {"state": "s"}, {"state": "s", "code": "", "error": ""}, {"state": "", "code": "x"}):
        response = auth_client.post("/api/v1/providers/oauth/schwab/complete", body, format="json")
        assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR", body


@pytest.mark.integration
def test_declined_consent_is_refused_and_recorded_on_the_connection(auth_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    params = schwab.follow_authorization(created["authorization_url"])
    landing = callback(auth_client, {"error": "access_denied", "state": params["state"]})
    assert landing == {"provider": "schwab", "state": params["state"], "error": "access_denied"}
    response = complete(auth_client, landing)
    assert response.status_code == 403
    assert response.json()["code"] == "PERMISSION_DENIED" and response.json()["outcome"] == "denied"
    connection = ProviderConnection.objects.get(pk=created["id"])
    assert connection.last_error_code == "access_denied"
    assert connection.status == ConnectionStatus.PENDING
    assert schwab.token_calls == []
    assert AuditEvent.objects.filter(action="provider.oauth.failed", target_id=created["id"],
                                     extra__reason="access_denied").exists()


@pytest.mark.integration
def test_a_failed_code_exchange_is_an_error_on_the_connection(auth_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    landing = callback(auth_client, schwab.follow_authorization(created["authorization_url"]))
    schwab.token_script = ["500"]
    response = complete(auth_client, landing)
    assert response.status_code == 502
    assert response.json()["code"] == "PROVIDER_ERROR" and response.json()["outcome"] == "failed"
    connection = ProviderConnection.objects.get(pk=created["id"])
    assert connection.status == ConnectionStatus.ERROR
    assert connection.last_error_code == "server_error"
    assert len(schwab.token_calls) == 1  # a token request is never retried
    assert not ProviderToken.objects.exists()
    assert AuditEvent.objects.filter(action="provider.oauth.failed", target_id=created["id"], outcome="failure",
                                     extra__reason="server_error").exists()
    # The state was spent before the exchange: it cannot be tried again.
    assert complete(auth_client, landing).json()["outcome"] == "replayed"


@pytest.mark.integration
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


@pytest.mark.integration
def test_reconnect_issues_a_new_state_and_kills_the_old_one(auth_client, api_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    old = callback(api_client, schwab.follow_authorization(created["authorization_url"]))
    again = auth_client.post(f"/api/v1/providers/{created['id']}/authorization")
    assert again.status_code == 200
    new = callback(api_client, schwab.follow_authorization(again.json()["authorization_url"]))
    assert complete(auth_client, old).json()["outcome"] == "invalid_state"
    assert complete(auth_client, new).json()["outcome"] == "connected"


@pytest.mark.integration
@pytest.mark.slow
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


@pytest.mark.integration
@pytest.mark.slow
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


@pytest.mark.integration
def test_rename_a_connection(auth_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    response = auth_client.patch(f"/api/v1/providers/{created['id']}", {"alias": "Retirement"}, format="json")
    assert response.status_code == 200 and response.json()["alias"] == "Retirement"
    assert AuditEvent.objects.filter(action="provider.connection.updated", target_id=created["id"]).exists()


@pytest.mark.integration
def test_redirect_uri_is_sent_to_the_provider(auth_client, schwab):
    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    assert "redirect_uri=" + REDIRECT_URI.replace(":", "%3A").replace("/", "%2F") in created["authorization_url"]


@pytest.mark.integration
def test_alias_defaults_to_the_provider_name(auth_client, schwab):
    first = auth_client.post("/api/v1/providers", {"provider_key": "schwab"}, format="json")
    second = auth_client.post("/api/v1/providers", {"provider_key": "schwab"}, format="json")
    assert (first.status_code, second.status_code) == (201, 201)
    assert [first.json()["alias"], second.json()["alias"]] == ["Charles Schwab", "Charles Schwab 2"]


@pytest.mark.integration
def test_expired_oauth_states_are_cleaned_up(auth_client, schwab):
    from datetime import timedelta

    from django.utils import timezone

    from providers.tasks import cleanup_oauth_states

    auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json")
    auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "B"}, format="json")
    OAuthState.objects.filter(connection__alias="A").update(expires_at=timezone.now() - timedelta(days=2))
    assert cleanup_oauth_states.delay().get() == 1
    assert list(OAuthState.objects.values_list("connection__alias", flat=True)) == ["B"]


@pytest.mark.integration
@pytest.mark.slow
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


@pytest.mark.integration
@pytest.mark.slow
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


@pytest.mark.integration
def test_a_deactivated_users_authorization_in_flight_does_not_connect(auth_client, schwab, user):
    """A reconnect of a revoked connection, then deactivation: the late completion must not connect."""
    from accounts.services import user_deactivate
    from providers.services import connection_revoke

    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    connection_revoke(connection=ProviderConnection.objects.get(pk=created["id"]), reason="admin")
    url = auth_client.post(f"/api/v1/providers/{created['id']}/authorization").json()["authorization_url"]
    landing = callback(auth_client, schwab.follow_authorization(url))
    user_deactivate(user=user, reason="staff")

    response = complete(auth_client, landing)

    assert response.status_code == 401  # the deactivated user's sessions are over
    assert response["Content-Type"] == "application/problem+json"
    assert schwab.token_calls == []
    assert not ProviderToken.objects.exists()
    assert ProviderConnection.objects.get(pk=created["id"]).status == ConnectionStatus.REVOKED
    assert not OAuthState.objects.filter(used_at__isnull=True).exists()


@pytest.mark.integration
def test_the_service_refuses_a_state_whose_user_is_inactive(auth_client, schwab, user):
    from accounts.models import User
    from providers.services import oauth_authorization_complete

    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    landing = callback(auth_client, schwab.follow_authorization(created["authorization_url"]))
    User.objects.filter(pk=user.pk).update(is_active=False)
    user.refresh_from_db()

    outcome = oauth_authorization_complete(user=user, provider_key="schwab", state=landing["state"],
                                           code=landing["code"])

    assert outcome.outcome == "invalid_state"
    assert schwab.token_calls == []
    assert not ProviderToken.objects.exists()
    assert OAuthState.objects.get().used_at is not None
    assert AuditEvent.objects.filter(action="provider.oauth.failed", target_id=created["id"],
                                     extra__reason="oauth_state_user_inactive").exists()


@pytest.mark.integration
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


@pytest.mark.integration
def test_a_state_used_by_a_concurrent_completion_meanwhile_is_a_replay(auth_client, api_client, schwab, monkeypatch):
    """Using the state is a compare-and-swap: a completion that read it before another one used it
    must not connect a second time or downgrade the connection."""
    from django.db.models.query import QuerySet
    from django.utils import timezone

    created = auth_client.post("/api/v1/providers", {"provider_key": "schwab", "alias": "A"}, format="json").json()
    landing = callback(api_client, schwab.follow_authorization(created["authorization_url"]))
    real_first = QuerySet.first

    def first_then_used_elsewhere(self):
        row = real_first(self)
        if isinstance(row, OAuthState) and row.used_at is None:
            OAuthState.objects.filter(pk=row.pk).update(used_at=timezone.now())
            ProviderConnection.objects.filter(pk=row.connection_id).update(status=ConnectionStatus.ACTIVE)
        return row

    monkeypatch.setattr(QuerySet, "first", first_then_used_elsewhere)
    response = complete(auth_client, landing)
    monkeypatch.undo()
    assert response.status_code == 400 and response.json()["outcome"] == "replayed"
    assert not ProviderToken.objects.exists()
    assert ProviderConnection.objects.get(pk=created["id"]).status == ConnectionStatus.ACTIVE
