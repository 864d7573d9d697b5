"""The sandbox provider served by the app itself under /sandbox/, over real HTTP."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.utils import timezone

from providers.models import ProviderConnection, ProviderToken
from tests.factories import UserFactory
from tests.providers.conftest import client_for


@pytest.fixture
def sandbox(settings, live_server):
    settings.SANDBOX_PROVIDER_ENABLED = True
    # As in development: the front end is this app, and the landing is the sandbox's page.
    settings.FRONTEND_URL = live_server.url
    settings.PROVIDER_OAUTH_RESULT_PATH = "/sandbox/oauth-result"
    settings.SANDBOX_API_BASE_URL = f"{live_server.url}/sandbox"
    settings.SANDBOX_REDIRECT_URI = f"{live_server.url}/api/v1/providers/oauth/sandbox/callback"
    return live_server.url


def _session(user, base):
    token = client_for(user)._credentials["HTTP_AUTHORIZATION"]
    s = requests.Session()
    s.headers["Authorization"] = token
    return s


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
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
    # The public callback only hands the code to the landing page; nothing is connected yet.
    landing = browser.get(back.headers["Location"], allow_redirects=False, timeout=10)
    assert landing.status_code == 302
    assert landing.headers["Location"].startswith(f"{sandbox}/sandbox/oauth-result?provider=sandbox&")
    page = browser.get(landing.headers["Location"], timeout=10)
    assert page.status_code == 200 and "/api/v1/providers/oauth/sandbox/complete" in page.text
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    assert api.get(f"{sandbox}/api/v1/providers/{created.json()['id']}", timeout=10).json()["status"] == "pending"
    # The newcomer pastes the page's body into POST complete (in /api/docs), signed in as themselves.
    body = json.loads(html.unescape(re.search(r"<pre id='complete-body'>(.*?)</pre>", page.text, re.S).group(1)))
    params = {k: v[0] for k, v in parse_qs(urlparse(landing.headers["Location"]).query).items()}
    assert body == {"state": params["state"], "code": params["code"]}
    done = api.post(f"{sandbox}/api/v1/providers/oauth/sandbox/complete", json=body, timeout=30)
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "connected"

    accounts = api.get(f"{sandbox}/api/v1/accounts", timeout=10).json()["results"]
    assert len(accounts) == 2 and all(a["account_number_masked"].startswith("****") for a in accounts)
    txs = api.get(f"{sandbox}/api/v1/accounts/{accounts[0]['id']}/transactions", timeout=10).json()
    assert txs["results"]

    # Just obtained: a forced refresh answers from the stored state. An older one is refreshed.
    fresh = api.post(f"{sandbox}/api/v1/providers/{created.json()['id']}/token-refresh", timeout=30)
    assert fresh.status_code == 200 and fresh.json()["refreshed"] is False
    ProviderConnection.objects.update(last_refreshed_at=timezone.now() - timedelta(hours=1))
    refreshed = api.post(f"{sandbox}/api/v1/providers/{created.json()['id']}/token-refresh", timeout=30)
    assert refreshed.status_code == 200 and refreshed.json()["rotation"] == "rotated"
    assert ProviderToken.objects.get().refresh_count == 1
    # A replayed completion is refused.
    again = api.post(f"{sandbox}/api/v1/providers/oauth/sandbox/complete", json=body, timeout=10)
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


def test_the_development_landing_page_shows_the_body_to_complete_with(settings, client):
    settings.SANDBOX_PROVIDER_ENABLED = True
    page = client.get("/sandbox/oauth-result", {"provider": "sandbox", "state": "<b>s</b>", "code": "c0de"})
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store" and page["Referrer-Policy"] == "no-referrer"
    body = page.content.decode()
    assert "POST /api/v1/providers/oauth/sandbox/complete" in body
    assert "&lt;b&gt;s&lt;/b&gt;" in body and "<b>s</b>" not in body and "c0de" in body
    denied = client.get("/sandbox/oauth-result", {"provider": "sandbox", "state": "s", "error": "access_denied"})
    assert "access_denied" in denied.content.decode() and "&quot;error&quot;" in denied.content.decode()
