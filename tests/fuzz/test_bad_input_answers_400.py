"""The crafted inputs of issue 13, section 3: each is a 400 problem+json naming the parameter."""

from __future__ import annotations

import base64
import logging
from urllib.parse import urlencode

import pytest
from django.core import signing
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import UserFactory
from tests.providers.conftest import client_for, connect

pytestmark = pytest.mark.django_db


def assert_bad_parameter(response, name: str):
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert name in body["errors"], body


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/auth/request-password-reset",
                                  "/api/v1/auth/register", "/api/v1/auth/refresh"])
@pytest.mark.parametrize("body", ["[" * 1000, "[" * 100_000, '{"a":' * 1000 + "1" + "}" * 1000,
                                  '{"email": ' + "[" * 40 + "]" * 40 + "}"])
def test_deeply_nested_json_is_a_400_without_a_traceback(settings, caplog, path, body):
    settings.RATELIMIT_ENABLE = False
    with caplog.at_level(logging.WARNING):
        response = APIClient().post(path, body, content_type="application/json")
    assert_bad_parameter(response, "body")
    assert "nested too deeply" in response.json()["errors"]["body"][0]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_json_within_the_depth_limit_still_parses(settings):
    settings.RATELIMIT_ENABLE = False
    body = '{"email": "a@example.com", "password": "x", "extra": ' + "[" * 20 + "]" * 20 + "}"
    response = APIClient().post("/api/v1/auth/login", body, content_type="application/json")
    assert response.status_code == 401


@pytest.fixture
def connected(settings, schwab, django_capture_on_commit_callbacks):
    settings.RATELIMIT_ENABLE = False
    user = UserFactory(is_staff=True, is_superuser=True)
    client = client_for(user)
    with django_capture_on_commit_callbacks(execute=True):  # the first sync runs: accounts and transactions
        connection_id = connect(client, schwab)
    account = client.get("/api/v1/accounts").json()["results"][0]
    return client, connection_id, account["id"]


@pytest.mark.parametrize(("param", "value"), [
    ("start", "2024-02-30"), ("end", "2024-13-01"), ("start", "0000-01-01"), ("end", "2024-02-30T10:00:00Z"),
    ("start", "1899-12-31"), ("start", "0001-01-01T00:00:00+14:00"), ("end", "9999-12-31T23:00:00-05:00"),
    ("start", "yesterday"),
])
@pytest.mark.integration
def test_impossible_dates_on_transactions_are_a_400_naming_the_parameter(connected, param, value):
    client, _, account_id = connected
    response = client.get(f"/api/v1/accounts/{account_id}/transactions", {param: value})
    assert_bad_parameter(response, param)


@pytest.mark.integration
def test_sane_dates_on_transactions_still_work(connected):
    client, _, account_id = connected
    response = client.get(f"/api/v1/accounts/{account_id}/transactions", {"start": "2020-01-01", "end": "2030-12-31"})
    assert response.status_code == 200


def cursor(**fields) -> str:
    return base64.b64encode(urlencode(fields).encode()).decode()


TAMPERED = ["%%%", base64.b64encode(b"\xff\xfe").decode(), cursor(o="x"), cursor(p="not a date"),
            cursor(p="2024-02-30"), cursor(p="9999-12-31 23:59:59-14:00"), cursor(p="0001-01-01 00:00:00+14:00"),
            cursor(o="1", r="1", p="\x00")]


@pytest.mark.integration
@pytest.mark.parametrize("tampered", TAMPERED)
def test_a_tampered_cursor_is_a_400_on_every_cursor_paginated_list(connected, tampered):
    client, _, account_id = connected
    for path in ("/api/v1/providers", "/api/v1/accounts", f"/api/v1/accounts/{account_id}/transactions",
                 "/api/v1/admin/audit/events"):
        assert_bad_parameter(client.get(path, {"cursor": tampered}), "cursor")


@pytest.mark.integration
def test_a_real_cursor_still_pages(connected):
    client, _, _ = connected
    first = client.get("/api/v1/admin/audit/events", {"page_size": 1}).json()
    assert first["next"]
    assert client.get(first["next"]).status_code == 200


# --- The sandbox ------------------------------------------------------------------------
@pytest.fixture
def sandbox_get(settings):
    from providers.sandbox import views

    settings.SANDBOX_PROVIDER_ENABLED = True
    token = signing.dumps({"sub": "s", "iat": 0, "n": "0"}, salt="dashtam.sandbox.access")
    url = f"/sandbox/trader/v1/accounts/{views._accounts('s')[0]['hash']}/transactions"
    return lambda **q: Client().get(url, q, HTTP_AUTHORIZATION=f"Bearer {token}")


OK_START, OK_END = "2024-01-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z"


@pytest.mark.parametrize(("param", "start", "end"), [
    ("startDate", "1969-12-31T00:00:00Z", OK_END),
    ("startDate", "1900-01-01T00:00:00Z", "1900-02-01T00:00:00Z"),
    ("startDate", "2024-01-01T00:00:00", OK_END),
    ("endDate", OK_START, "2024-03-01T00:00:00"),
    ("startDate", "2024-02-30T00:00:00Z", OK_END),
    ("startDate", "0001-01-01T00:00:00+14:00", OK_END),
    ("startDate", "", OK_END),
    ("endDate", OK_START, "soon"),
    ("endDate", OK_START, "2023-12-01T00:00:00Z"),
    ("endDate", "2020-01-01T00:00:00Z", "2021-06-01T00:00:00Z"),
])
def test_the_sandbox_refuses_bad_transaction_windows_naming_the_parameter(sandbox_get, param, start, end):
    assert_bad_parameter(sandbox_get(startDate=start, endDate=end), param)


def test_the_sandbox_serves_a_window_of_up_to_one_year(sandbox_get):
    response = sandbox_get(startDate="2023-01-01T00:00:00.000Z", endDate="2023-12-31T23:59:59.000Z")
    assert response.status_code == 200 and len(response.json()) > 50


def test_the_sandbox_token_response_is_no_store(settings):
    from providers.clients.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    settings.SANDBOX_PROVIDER_ENABLED = True
    refresh = signing.dumps({"sub": "s", "iat": 0, "n": "0"}, salt="dashtam.sandbox.refresh")
    basic = base64.b64encode(f"{SANDBOX_CLIENT_ID}:{SANDBOX_CLIENT_SECRET}".encode()).decode()
    response = Client().post("/sandbox/v1/oauth/token", {"grant_type": "refresh_token", "refresh_token": refresh},
                             HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 200 and "access_token" in response.json()
    assert "no-store" in response["Cache-Control"]
