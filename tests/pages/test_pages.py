"""The account pages as HTTP sees them: served, cached or not, and where the emails link."""

from __future__ import annotations

import os

import pytest
from django.urls import resolve

from account_pages.pages import PAGES

pytestmark = pytest.mark.django_db
PATHS = {
    "login": "/account/login", "register": "/account/register", "forgot-password": "/account/forgot-password",
    "verify-email": "/account/verify-email", "reset-password": "/account/reset-password",
    "magic-link": "/account/magic-link", "unlock": "/account/unlock", "security": "/account/security",
    "connections": "/account/connections", "connections-callback": "/account/connections/callback",
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_page_is_served_with_a_csp_that_allows_no_inline_script(client, name):
    response = client.get(PATHS[name])
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    policy = dict(d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";") if d.strip())
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    html = response.content.decode()
    assert f'data-page="{name}"' in html and "<script>" not in html and " onclick=" not in html


@pytest.mark.parametrize("name", [n for n, p in PAGES.items() if p.carries_secret])
def test_pages_with_a_token_in_their_url_are_not_cached_and_send_no_referrer(client, name):
    response = client.get(PATHS[name], {"token": "abc"})
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer"


def test_the_pages_can_be_switched_off(client, settings):
    settings.ACCOUNT_PAGES_ENABLED = False
    assert client.get("/account/login").status_code == 404


def test_old_email_paths_lead_to_the_pages(client):
    assert client.get("/account/settings/sessions")["Location"] == "/account/security"
    assert client.get("/account/connections/5f0c7d3e-8a1b-4c2d-9e3f-1a2b3c4d5e6f")["Location"] == "/account/connections"
    assert client.get("/account/")["Location"] == "/account/security"


def test_in_development_every_email_link_lands_on_a_page(settings):
    # FRONTEND_URL defaults to the development server's /account (tests run with the same default).
    if "FRONTEND_URL" not in os.environ:
        assert settings.FRONTEND_URL.endswith("/account")
    for path in ("/verify-email", "/reset-password", "/magic-link", "/unlock", "/login", "/forgot-password",
                 "/settings/sessions", settings.PROVIDER_OAUTH_RESULT_PATH):
        resolve("/account" + path)


def test_the_development_front_end_is_addressed_as_localhost():
    # Passkeys need a host name (a WebAuthn RP ID cannot be an IP), and the pages keep the
    # bearer per origin: the email links and the OAuth landing use the same origin as the pages.
    from dashtam.config import browser_url

    assert browser_url("http://127.0.0.1:8000") == "http://localhost:8000"
    assert browser_url("http://[::1]:8001") == "http://localhost:8001"
    assert browser_url("https://dev.example.com:8443") == "https://dev.example.com:8443"
