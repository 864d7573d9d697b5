"""Helpers for the second-factor tests: codes are computed here from the secret the API returned."""

from __future__ import annotations

import time

import pyotp

from tests.accounts.conftest import login


def code_for(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


def enable_totp(client, password: str, *, end_other_sessions: bool | None = None) -> tuple[str, list[str]]:
    """Enrol and confirm through the API; returns (secret, recovery codes).

    Confirms with the previous step's code so a login right after can use the current one.
    """
    started = client.post("/api/v1/auth/mfa/totp", {"password": password}, format="json")
    assert started.status_code == 200, started.content
    secret = started.json()["secret"]
    body = {"code": code_for(secret, -1)}
    if end_other_sessions is not None:
        body["end_other_sessions"] = end_other_sessions
    confirmed = client.post("/api/v1/auth/mfa/totp/confirm", body, format="json")
    assert confirmed.status_code == 200, confirmed.content
    return secret, confirmed.json()["recovery_codes"]


def mfa_token_for(client, email: str, password: str) -> str:
    response = login(client, email, password)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["mfa_required"] is True, body
    return body["mfa_token"]


def login_mfa(client, mfa_token: str, code: str, **extra):
    return client.post("/api/v1/auth/login/mfa", {"mfa_token": mfa_token, "code": code}, format="json", **extra)
