"""Magic links on an account with a second factor: the link is a first factor, never the only one."""

from __future__ import annotations

import time

import pyotp
import pytest

from sessions_mgmt.models import Session
from tests.accounts.conftest import login, outbox_to, token_from

pytestmark = pytest.mark.django_db


def enrol_totp(client, user, password) -> str:
    access = login(client, user.email, password).json()["access"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {access}"}
    secret = client.post("/api/v1/auth/mfa/totp", {"password": password}, format="json", **auth).json()["secret"]
    confirmed = client.post("/api/v1/auth/mfa/totp/confirm", {"code": pyotp.TOTP(secret).now()},
                            format="json", **auth)
    assert confirmed.status_code == 200, confirmed.content
    return secret


def test_a_magic_link_on_an_account_with_totp_asks_for_the_code(api_client, user, password,
                                                                django_capture_on_commit_callbacks):
    secret = enrol_totp(api_client, user, password)
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.post("/api/v1/auth/magic-link", {"email": user.email}, format="json").status_code == 202
    answer = api_client.post("/api/v1/auth/magic-link/verify", {"token": token_from(outbox_to(user.email)[-1])},
                             format="json")
    assert answer.status_code == 200
    body = answer.json()
    assert body["mfa_required"] is True and "totp" in body["methods"] and "access" not in body
    assert answer["Cache-Control"] == "no-store"
    code = pyotp.TOTP(secret).at(time.time() + 30)  # the enrolment's step is spent
    done = api_client.post("/api/v1/auth/login/mfa", {"mfa_token": body["mfa_token"], "code": code}, format="json")
    assert done.status_code == 200, done.content
    session = Session.objects.get(pk=done.json()["session_id"])
    assert session.auth_methods == ["magic_link", "totp"]
