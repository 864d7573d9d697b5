"""A passkey as the second factor of a password login, and the session's auth_methods."""

from __future__ import annotations

import jwt
import pytest

from accounts.passkeys.models import Passkey
from audit.models import AuditEvent
from sessions_mgmt.models import Session
from tests.accounts.conftest import login
from tests.accounts.mfa_helpers import enable_totp, mfa_token_for
from tests.accounts.soft_authenticator import SoftAuthenticator
from tests.accounts.test_passkeys import BASE, ORIGIN, anonymous, bearer, register, sign_in
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("_relying_party")


@pytest.fixture
def _relying_party(settings):
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.WEBAUTHN_ORIGINS = [ORIGIN]


@pytest.fixture
def authenticator():
    return SoftAuthenticator(origin=ORIGIN)


@pytest.fixture
def with_passkey(api_client, user, password, authenticator):
    client = bearer(api_client, user, password)
    assert register(client, authenticator).status_code == 201
    return client


def mfa_options(client, mfa_token):
    response = client.post(f"{BASE}/authentication/options", {"mfa_token": mfa_token}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def finish(client, mfa_token, assertion):
    return client.post("/api/v1/auth/login/mfa", {"mfa_token": mfa_token, "passkey": assertion}, format="json")


def test_a_passkey_only_account_is_asked_for_it_after_the_password(with_passkey, user, password, authenticator):
    client = anonymous()
    body = login(client, user.email, password).json()
    assert body["mfa_required"] is True and body["methods"] == ["passkey"] and "access" not in body
    options = mfa_options(client, body["mfa_token"])
    assert [c["id"] for c in options["allowCredentials"]] == [Passkey.objects.get(user=user).credential_id]
    response = finish(client, body["mfa_token"], authenticator.get(options))
    assert response.status_code == 200, response.content
    assert response["Cache-Control"].startswith("no-store")
    session = Session.objects.get(pk=response.json()["session_id"])
    assert session.auth_methods == ["password", "passkey"]
    claims = jwt.decode(response.json()["access"], options={"verify_signature": False})
    assert claims["amr"] == ["password", "passkey"]
    # The mfa_token is spent.
    again = finish(client, body["mfa_token"], authenticator.get(options))
    assert again.status_code == 401 and again.json()["code"] == "TOKEN_INVALID"


def test_methods_list_every_factor_and_status_counts_passkeys(with_passkey, user, password):
    enable_totp(with_passkey, password)
    body = login(anonymous(), user.email, password).json()
    assert body["methods"] == ["totp", "recovery_code", "passkey"]
    status = with_passkey.get("/api/v1/auth/mfa").json()
    assert status["passkeys"] == 1 and status["totp"]["enabled"] is True


def test_usernameless_sign_in_records_passkey_as_the_method(with_passkey, user, authenticator):
    client = anonymous()
    response, _ = sign_in(client, authenticator)
    assert response.status_code == 200
    assert Session.objects.get(pk=response.json()["session_id"]).auth_methods == ["passkey"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    current = [s for s in client.get("/api/v1/auth/sessions").json() if s["is_current"]]
    assert current[0]["auth_methods"] == ["passkey"]
    assert AuditEvent.objects.filter(action="auth.login.succeeded", extra__auth_methods=["passkey"]).exists()


@pytest.mark.slow
def test_an_assertion_for_another_challenge_is_a_wrong_code(with_passkey, user, password, authenticator):
    client = anonymous()
    mfa_token = mfa_token_for(client, user.email, password)
    usernameless = client.post(f"{BASE}/authentication/options", {}, format="json").json()
    response = finish(client, mfa_token, authenticator.get(usernameless))
    assert response.status_code == 401 and response.json()["code"] == "INVALID_MFA_CODE"
    assert AuditEvent.objects.filter(action="auth.passkey.failed", extra__step="mfa").exists()
    # The step itself still works with the right options.
    response = finish(client, mfa_token, authenticator.get(mfa_options(client, mfa_token)))
    assert response.status_code == 200


@pytest.mark.slow
def test_options_of_one_mfa_token_do_not_serve_another(with_passkey, user, password, authenticator):
    client = anonymous()
    first = mfa_token_for(client, user.email, password)
    second = mfa_token_for(client, user.email, password)
    response = finish(client, second, authenticator.get(mfa_options(client, first)))
    assert response.status_code == 401 and response.json()["code"] == "INVALID_MFA_CODE"


@pytest.mark.slow
def test_another_users_passkey_cannot_finish_the_step(with_passkey, user, password, authenticator):
    other, other_device = UserFactory(password=password), SoftAuthenticator(origin=ORIGIN)
    assert register(bearer(anonymous(), other, password), other_device).status_code == 201
    client = anonymous()
    mfa_token = mfa_token_for(client, user.email, password)
    options = mfa_options(client, mfa_token)
    assertion = other_device.get(options, credential=next(iter(other_device.credentials.values())))
    response = finish(client, mfa_token, assertion)
    assert response.status_code == 401 and response.json()["code"] == "INVALID_MFA_CODE"


def test_a_sign_counter_going_backwards_at_the_step_is_token_invalid(with_passkey, user, password, authenticator):
    client = anonymous()
    assert sign_in(client, authenticator, sign_count=9)[0].status_code == 200
    mfa_token = mfa_token_for(client, user.email, password)
    response = finish(client, mfa_token, authenticator.get(mfa_options(client, mfa_token), sign_count=2))
    assert response.status_code == 401 and response.json()["code"] == "TOKEN_INVALID"
    assert AuditEvent.objects.filter(action="auth.passkey.counter_regressed", extra__step="mfa").exists()


def test_a_dead_mfa_token_gets_no_options(db):
    response = anonymous().post(f"{BASE}/authentication/options", {"mfa_token": "nope"}, format="json")
    assert response.status_code == 401 and response.json()["code"] == "TOKEN_INVALID"


def test_code_and_passkey_together_or_neither_are_refused(with_passkey, user, password, authenticator):
    client = anonymous()
    mfa_token = mfa_token_for(client, user.email, password)
    both = client.post("/api/v1/auth/login/mfa", {"mfa_token": mfa_token, "code": "123456", "passkey": {}},
                       format="json")
    neither = client.post("/api/v1/auth/login/mfa", {"mfa_token": mfa_token}, format="json")
    assert both.status_code == neither.status_code == 400


def test_a_staff_reset_removes_the_passkeys_too(with_passkey, user, staff_user):
    from accounts.mfa.services import mfa_reset

    assert mfa_reset(user=user, actor=staff_user) is True
    assert not Passkey.objects.filter(user=user).exists()
    assert AuditEvent.objects.get(action="auth.mfa.reset").extra["passkeys_removed_count"] == 1
