"""The sandbox provider served by the app itself under /sandbox/, over real HTTP."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from providers.models import ProviderToken
from tests.factories import UserFactory
from tests.providers.conftest import client_for


@pytest.fixture
def sandbox(settings, live_server):
    settings.SANDBOX_PROVIDER_ENABLED = True
    settings.SANDBOX_API_BASE_URL = f"{live_server.url}/sandbox"
    settings.SANDBOX_REDIRECT_URI = f"{live_server.url}/api/v1/providers/oauth/sandbox/callback"
    return live_server.url


def _session(user, base):
    token = client_for(user)._credentials["HTTP_AUTHORIZATION"]
    s = requests.Session()
    s.headers["Authorization"] = token
    return s


@pytest.mark.django_db(transaction=True)
def test_a_newcomer_connects_the_sandbox_and_sees_accounts(sandbox):
    user = UserFactory()
    api = _session(user, sandbox)
    types = {t["key"]: t for t in api.get(f"{sandbox}/api/v1/provider-types", timeout=10).json()}
    assert types["sandbox"]["configured"] is True
    created = api.post(f"{sandbox}/api/v1/providers", json={"provider_key": "sandbox", "alias": "Demo"}, timeout=10)
    assert created.status_code == 201, created.text
    url = created.json()["authorization_url"]
    assert "code_challenge_method=S256" in url  # PKCE where supported

    browser = requests.Session()
    page = browser.get(url, timeout=10)
    assert page.status_code == 200 and "Approve" in page.text
    approve = re.search(r"href='([^']*decision=approve)'", page.text).group(1).replace("&amp;", "&")
    back = browser.get(f"{sandbox}{approve}", allow_redirects=False, timeout=10)
    assert back.status_code == 302
    params = {k: v[0] for k, v in parse_qs(urlparse(back.headers["Location"]).query).items()}
    done = browser.get(back.headers["Location"], headers={"Accept": "application/json"}, timeout=30)
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "connected"

    accounts = api.get(f"{sandbox}/api/v1/accounts", timeout=10).json()["results"]
    assert len(accounts) == 2 and all(a["account_number_masked"].startswith("****") for a in accounts)
    txs = api.get(f"{sandbox}/api/v1/accounts/{accounts[0]['id']}/transactions", timeout=10).json()
    assert txs["results"]

    refreshed = api.post(f"{sandbox}/api/v1/providers/{created.json()['id']}/token-refresh", timeout=30)
    assert refreshed.status_code == 200 and refreshed.json()["rotation"] == "rotated"
    assert ProviderToken.objects.get().refresh_count == 1
    # A replayed callback is refused.
    again = browser.get(f"{sandbox}/api/v1/providers/oauth/sandbox/callback", params=params,
                        headers={"Accept": "application/json"}, timeout=10)
    assert again.status_code == 400 and again.json()["outcome"] == "replayed"


def test_the_sandbox_is_absent_when_disabled(settings, client):
    settings.SANDBOX_PROVIDER_ENABLED = False
    assert client.get("/sandbox/v1/oauth/authorize").status_code == 404
    assert client.post("/sandbox/v1/oauth/token").status_code == 404


@pytest.mark.django_db
def test_sandbox_is_not_offered_when_disabled(settings):
    settings.SANDBOX_PROVIDER_ENABLED = False
    client = client_for(UserFactory())
    keys = [t["key"] for t in client.get("/api/v1/provider-types").json()]
    assert "sandbox" not in keys
    response = client.post("/api/v1/providers", {"provider_key": "sandbox", "alias": "x"}, format="json")
    assert response.status_code == 400


def test_the_development_result_page_shows_the_outcome(settings, client):
    settings.SANDBOX_PROVIDER_ENABLED = True
    page = client.get("/sandbox/oauth-result", {"outcome": "connected", "connection_id": "<b>x</b>"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "Connected." in body and "&lt;b&gt;x&lt;/b&gt;" in body
