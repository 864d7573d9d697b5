"""Tokens name their issuer and audience, and a malformed Authorization header gets a sentence.

Issue 12, section 6: access and refresh tokens carry ``iss`` (JWT_ISSUER) and ``aud``
(JWT_AUDIENCE), both checked; a token signed with our key but without them, or with
other values, is refused. Malformed headers answer 401 TOKEN_INVALID with a plain
sentence, never Python's repr of an error dict.
"""

from __future__ import annotations

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def resign(token: str, **changes) -> str:
    """The same token, signed with our key, with claims changed (None removes one)."""
    payload = claims_of(token)
    for claim, value in changes.items():
        if value is None:
            payload.pop(claim, None)
        else:
            payload[claim] = value
    return jwt.encode(payload, settings.JWT_SIGNING_KEY, algorithm="HS256")


def test_access_and_refresh_tokens_carry_the_issuer_and_audience(user, start_session):
    issued = start_session(user)
    for token in (issued.access, issued.refresh):
        claims = claims_of(token)
        assert (claims["iss"], claims["aud"]) == (settings.JWT_ISSUER, settings.JWT_AUDIENCE)


def test_the_unchanged_resigned_token_still_works(user, start_session, client_for):
    """The control for the refusals below: re-signing alone changes nothing."""
    issued = start_session(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {resign(issued.access)}")
    assert client.get("/api/v1/auth/me").status_code == 200


BAD_CLAIMS = [
    {"iss": None},
    {"aud": None},
    {"iss": None, "aud": None},
    {"iss": "someone-else"},
    {"aud": "another-api"},
    {"aud": ["another-api"]},
]


@pytest.mark.parametrize("changes", BAD_CLAIMS)
def test_an_access_token_without_our_issuer_and_audience_is_refused(user, start_session, changes):
    issued = start_session(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {resign(issued.access, **changes)}")
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_INVALID"


@pytest.mark.parametrize("changes", BAD_CLAIMS)
def test_a_refresh_token_without_our_issuer_and_audience_is_refused(user, start_session, changes):
    issued = start_session(user)
    response = APIClient().post("/api/v1/auth/refresh", {"refresh": resign(issued.refresh, **changes)},
                                format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_INVALID"
    # The genuine refresh token was not spent by the forged one.
    ok = APIClient().post("/api/v1/auth/refresh", {"refresh": issued.refresh}, format="json")
    assert ok.status_code == 200


MALFORMED = [
    "Bearer",
    "Bearer ",
    "Bearer a b",
    "Basic x",
    "Basic dXNlcjpwYXNz",
    "Token abc",
    "bearer",
    "Bearer\ttoo\tmany",
    "Bearer é",
    "Bearer 令牌",
    "Bearer \x00abc",
    "Bearer abc\x7f",
    "Bearer not-a-jwt",
    "Bearer a.b.c",
]


@pytest.mark.parametrize("header", MALFORMED)
@pytest.mark.parametrize("path", ["/api/v1/auth/me", "/api/v1/auth/sessions"])
def test_a_malformed_authorization_header_gets_401_token_invalid_in_plain_words(user, path, header):
    # Django hands headers over as latin-1 decoded text, as a WSGI server does.
    raw = header.encode("utf-8").decode("latin-1")
    response = APIClient().get(path, HTTP_AUTHORIZATION=raw)
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["code"] == "TOKEN_INVALID"
    assert response["Content-Type"].startswith("application/problem+json")
    assert response["WWW-Authenticate"].startswith("Bearer")
    detail = body["detail"]
    assert detail.endswith(".") and "{" not in detail and "[" not in detail and "'" not in detail
    assert "ErrorDetail" not in response.content.decode() and "token_class" not in response.content.decode()


def test_no_header_and_an_empty_header_mean_not_signed_in(user):
    assert APIClient().get("/api/v1/auth/me").json()["code"] == "NOT_AUTHENTICATED"
    assert APIClient().get("/api/v1/auth/me", HTTP_AUTHORIZATION="").json()["code"] == "NOT_AUTHENTICATED"


def test_the_scheme_is_case_insensitive(user, start_session):
    issued = start_session(user)
    response = APIClient().get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"bearer {issued.access}")
    assert response.status_code == 200
