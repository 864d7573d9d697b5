"""A Schwab look-alike served over real HTTP in the test process, and helpers.

``schwab`` speaks the Trader API's OAuth and account endpoints. Tests script the
token endpoint with ``schwab.token_script`` (one entry consumed per call; when the
script is empty, ``schwab.default_mode`` answers):

- ``rotate``: a new refresh token; ``same``: the same refresh token again;
  ``omit``: no refresh token in the answer;
- ``invalid_grant`` (401), ``429`` (with Retry-After), ``500``, ``slow`` (answers after
  ``slow_seconds``: the provider takes its time, no timeout intended);
- ``hang``: no answer until the test is over, so any read timeout fires, however loaded the
  machine (no sleep to race the timeout);
- ``gate``: the answer waits until the test sets ``schwab.gate`` (at most ``gate_timeout`` seconds).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Response

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
REDIRECT_URI = "https://app.example.test/api/v1/providers/oauth/schwab/callback"


class FakeSchwab:
    def __init__(self, server: HTTPServer):
        self.server = server
        self.url = server.url_for("").rstrip("/")
        self.lock = threading.Lock()
        self.codes: dict[str, str] = {}
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.token_script: list[str] = []
        self.default_mode = "rotate"
        self.data_script: list[str] = []  # for account calls: "429", "500", "slow", "hang"
        self.token_calls: list[dict] = []
        self.data_calls: list[str] = []
        self.issued: list[dict] = []
        self.slow_seconds = 0.6
        self.gate = threading.Event()
        self.gate_timeout = 10.0
        self.released = threading.Event()  # set when the test ends: "hang" answers then
        self.transactions = [
            {"activityId": 1001, "time": "2026-11-01T15:00:00+0000", "type": "TRADE",
             "description": "Buy AAPL", "netAmount": -1900.5,
             "transferItems": [{"instrument": {"symbol": "CURRENCY_USD"}},
                               {"instrument": {"symbol": "AAPL"}}]},
            {"activityId": 1002, "time": "2026-11-05T15:00:00+0000", "type": "DIVIDEND_OR_INTEREST",
             "description": "Dividend MSFT", "netAmount": 12.34,
             "transferItems": [{"instrument": {"symbol": "MSFT"}}]},
        ]
        server.expect_request("/v1/oauth/authorize", method="GET").respond_with_handler(self.authorize)
        server.expect_request("/v1/oauth/token", method="POST").respond_with_handler(self.token)
        server.expect_request("/trader/v1/accounts/accountNumbers").respond_with_handler(self.account_numbers)
        server.expect_request("/trader/v1/accounts").respond_with_handler(self.accounts)
        server.expect_request(
            "/trader/v1/accounts/HASH-A/transactions").respond_with_handler(self.transactions_view)

    # --- OAuth ---
    def authorize(self, request):
        q = request.args
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
            return Response("bad client", status=400)
        code = secrets.token_urlsafe(16)
        with self.lock:
            self.codes[code] = q["redirect_uri"]
        target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
        return Response(status=302, headers={"Location": target})

    def _client_ok(self, request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        return base64.b64decode(header[6:]).decode() == f"{CLIENT_ID}:{CLIENT_SECRET}"

    def _issue(self, refresh: str | None) -> dict:
        access = "AT-" + secrets.token_urlsafe(24)
        with self.lock:
            self.access_tokens.add(access)
            if refresh:
                self.refresh_tokens.add(refresh)
        body = {"access_token": access, "token_type": "Bearer", "expires_in": 1800, "scope": "api",
                "id_token": "x"}
        if refresh:
            body["refresh_token"] = refresh
        self.issued.append(body)
        return body

    def token(self, request):
        form = request.form
        with self.lock:
            self.token_calls.append({"grant_type": form.get("grant_type")})
            mode = self.token_script.pop(0) if self.token_script else self.default_mode
        if not self._client_ok(request):
            return _json({"error": "invalid_client"}, 401)
        if mode == "invalid_grant":
            return _json({"error": "invalid_grant", "error_description": "refresh token expired"}, 401)
        if mode == "429":
            return _json({"error": "too_many_requests"}, 429, {"Retry-After": "1"})
        if mode == "500":
            return _json({"error": "server_error"}, 500)
        if mode == "slow":
            time.sleep(self.slow_seconds)
        if mode == "hang":
            self.released.wait(self.gate_timeout)
        if mode == "gate":
            self.gate.wait(self.gate_timeout)
        if form.get("grant_type") == "authorization_code":
            with self.lock:
                redirect = self.codes.pop(form.get("code", ""), None)
            if redirect is None or redirect != form.get("redirect_uri"):
                return _json({"error": "invalid_grant"}, 400)
            return _json(self._issue("RT-" + secrets.token_urlsafe(24)))
        if form.get("grant_type") == "refresh_token":
            old = form.get("refresh_token", "")
            if old not in self.refresh_tokens:
                return _json({"error": "invalid_grant"}, 400)
            if mode == "same":
                return _json(self._issue(old))
            if mode == "omit":
                return _json(self._issue(None))
            return _json(self._issue("RT-" + secrets.token_urlsafe(24)))
        return _json({"error": "unsupported_grant_type"}, 400)

    # --- Data ---
    def _data_gate(self, request):
        with self.lock:
            self.data_calls.append(request.path)
            mode = self.data_script.pop(0) if self.data_script else ""
        if mode == "429":
            return _json({"message": "slow down"}, 429, {"Retry-After": "0"})
        if mode == "500":
            return _json({"message": "oops"}, 500)
        if mode == "slow":
            time.sleep(self.slow_seconds)
        if mode == "hang":
            self.released.wait(self.gate_timeout)
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or header[7:] not in self.access_tokens:
            return _json({"message": "Client not authorized"}, 401)
        return None

    def account_numbers(self, request):
        return self._data_gate(request) or _json([{"accountNumber": "12345678", "hashValue": "HASH-A"}])

    def accounts(self, request):
        gate = self._data_gate(request)
        if gate:
            return gate
        assert request.args.get("fields") == "positions"
        return _json([{"securitiesAccount": {
            "type": "MARGIN", "accountNumber": "12345678",
            "positions": [{"longQuantity": 10, "averagePrice": 150.0, "marketValue": 1900.0,
                           "instrument": {"symbol": "AAPL", "assetType": "EQUITY"}}],
            "currentBalances": {"cashBalance": 1000.25, "longMarketValue": 1900.0, "liquidationValue": 2900.25},
        }}])

    def transactions_view(self, request):
        gate = self._data_gate(request)
        if gate:
            return gate
        assert request.args.get("startDate") and request.args.get("endDate") and request.args.get("types")
        return _json(self.transactions)

    # --- helpers ---
    def follow_authorization(self, authorization_url: str) -> dict:
        """What a browser does: open the URL, get redirected back with code and state."""
        response = requests.get(authorization_url, allow_redirects=False, timeout=5)
        assert response.status_code == 302, response.text
        location = response.headers["Location"]
        assert location.startswith(REDIRECT_URI)
        return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}

    def refresh_calls(self) -> int:
        return sum(1 for c in self.token_calls if c["grant_type"] == "refresh_token")


def _json(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers or {})


@pytest.fixture
def schwab(settings):
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    fake = FakeSchwab(server)
    settings.SCHWAB_API_BASE_URL = fake.url
    settings.SCHWAB_CLIENT_ID = CLIENT_ID
    settings.SCHWAB_CLIENT_SECRET = CLIENT_SECRET
    settings.SCHWAB_REDIRECT_URI = REDIRECT_URI
    settings.SCHWAB_RATE_LIMIT = "1000/m"
    settings.HTTP_TIMEOUT_CONNECT = 2
    settings.HTTP_TIMEOUT_READ = 2
    settings.HTTP_BACKOFF_BASE_SECONDS = 0.01
    settings.HTTP_BACKOFF_MAX_SECONDS = 0.05
    settings.FRONTEND_URL = "https://app.example.test"
    try:
        yield fake
    finally:
        fake.released.set()
        fake.gate.set()
        server.clear()
        server.stop()


@pytest.fixture(autouse=True)
def _closed_circuits():
    from providers import breaker

    for key in ("schwab", "sandbox"):
        breaker.reset(key)
    yield
    for key in ("schwab", "sandbox"):
        breaker.reset(key)


def client_for(user):
    """An APIClient with a real session's bearer token (as after login)."""
    from django.test import RequestFactory
    from rest_framework.test import APIClient

    from sessions_mgmt.services import session_start

    request = RequestFactory().post("/api/v1/auth/login", HTTP_USER_AGENT="pytest", REMOTE_ADDR="203.0.113.9")
    issued = session_start(user=user, request=request)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.access}")
    return client


@pytest.fixture
def auth_client(user):
    return client_for(user)


def callback(client, params: dict, *, provider_key: str = "schwab") -> dict:
    """What the browser does on coming back: the public callback, which only redirects to the
    front end. Returns the query the front end receives (provider, state, code or error)."""
    response = client.get(f"/api/v1/providers/oauth/{provider_key}/callback", params)
    assert response.status_code == 302, response.content
    return {k: v[0] for k, v in parse_qs(urlparse(response["Location"]).query).items()}


def complete(client, landing: dict, *, provider_key: str | None = None):
    """What the front end does with the callback's query: POST complete as the signed-in user."""
    body = {k: v for k, v in landing.items() if k in ("state", "code", "error")}
    return client.post(f"/api/v1/providers/oauth/{provider_key or landing['provider']}/complete", body,
                       format="json")


def connected(schwab: FakeSchwab, user, *, alias: str = "My Schwab", **fields) -> str:
    """An active connection as ``connect`` leaves it (tokens the fake Schwab issued, its first
    sync queued), written with the factories: for tests whose subject is not the OAuth flow.
    Returns the connection id."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import ProviderConnectionFactory, ProviderTokenFactory

    issued = schwab._issue("RT-" + secrets.token_urlsafe(24))
    connection = ProviderConnectionFactory(user=user, alias=alias, sync_queued=True, **fields)
    ProviderTokenFactory(connection=connection, access=issued["access_token"], refresh=issued["refresh_token"],
                         expires_at=timezone.now() + timedelta(seconds=issued["expires_in"]),
                         scope=issued["scope"])
    return str(connection.pk)


def connect(client, schwab: FakeSchwab, *, alias: str = "My Schwab", capture=None):
    """POST providers, follow the authorization URL, call back, complete. Returns the connection id."""
    created = client.post("/api/v1/providers", {"provider_key": "schwab", "alias": alias}, format="json")
    assert created.status_code == 201, created.content
    params = schwab.follow_authorization(created.json()["authorization_url"])
    response = complete(client, callback(client, params))
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "connected"
    return created.json()["id"]
