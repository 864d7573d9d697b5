"""Second factors for staff: the admin's code step, the MFA status, the superuser's reset,
key rotation of the seeds, demo data, checks, and one recovery code used concurrently."""

from __future__ import annotations

import base64
import io
import os
import threading

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from accounts.mfa import services as mfa_services
from accounts.mfa.models import RecoveryCode, TotpDevice
from audit.models import AuditEvent
from tests.accounts.conftest import login, outbox_to
from tests.accounts.mfa_helpers import code_for, enable_totp, login_mfa, mfa_token_for
from tests.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _key(kid: str) -> str:
    return f"{kid}:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def _enabled_for(user) -> tuple[str, list[str]]:
    """Enable TOTP for ``user`` through the API (as the user would)."""
    from rest_framework.test import APIClient

    client = APIClient()
    body = login(client, user.email, PASSWORD).json()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    return enable_totp(client, PASSWORD)


def _password_step(client, email: str):
    return client.post("/admin/login/?next=/admin/", {"username": email, "password": PASSWORD})


# --- the admin's code step ----------------------------------------------------------------------
@pytest.mark.slow
def test_staff_with_a_factor_need_the_code_after_the_password(client):
    staff = UserFactory(password=PASSWORD, is_staff=True, is_superuser=True)
    secret, _ = _enabled_for(staff)
    response = _password_step(client, staff.email)
    assert response.status_code == 302 and response["Location"] == "/admin/mfa/"
    # The password alone has not logged anyone in.
    assert client.get("/admin/").status_code == 302
    assert "_auth_user_id" not in client.session
    page = client.get("/admin/mfa/")
    assert page.status_code == 200 and b'name="code"' in page.content
    wrong = "000000" if code_for(secret) != "000000" else "111111"
    assert client.post("/admin/mfa/", {"code": wrong}).status_code == 401
    done = client.post("/admin/mfa/", {"code": code_for(secret)})
    assert done.status_code == 302 and done["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert AuditEvent.objects.filter(action="auth.mfa.failed", extra__step="admin").count() == 1
    assert AuditEvent.objects.filter(action="auth.login.succeeded", extra__interface="admin",
                                     extra__auth_methods=["password", "totp"]).count() == 1


def test_admin_require_mfa_turns_staff_without_a_factor_away_with_instructions(client, settings):
    settings.ADMIN_REQUIRE_MFA = True
    staff = UserFactory(password=PASSWORD, is_staff=True, is_superuser=True)
    response = _password_step(client, staff.email)
    assert response["Location"] == "/admin/mfa/"
    page = client.get("/admin/mfa/")
    assert page.status_code == 403
    assert b"/api/v1/auth/mfa/totp" in page.content
    assert client.get("/admin/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_without_a_factor_and_the_setting_off_the_admin_login_is_unchanged(client, settings):
    settings.ADMIN_REQUIRE_MFA = False
    staff = UserFactory(password=PASSWORD, is_staff=True, is_superuser=True)
    response = _password_step(client, staff.email)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@pytest.mark.slow
def test_five_wrong_admin_codes_send_the_staff_member_back_to_the_password(client):
    staff = UserFactory(password=PASSWORD, is_staff=True, is_superuser=True)
    secret, _ = _enabled_for(staff)
    _password_step(client, staff.email)
    wrong = "000000" if code_for(secret) != "000000" else "111111"
    for _ in range(4):
        assert client.post("/admin/mfa/", {"code": wrong}).status_code == 401
    back = client.post("/admin/mfa/", {"code": wrong})
    assert back.status_code == 302 and back["Location"].startswith("/admin/login/")
    assert client.post("/admin/mfa/", {"code": code_for(secret)})["Location"].startswith("/admin/login/")
    assert client.get("/admin/").status_code == 302


# --- status and reset -------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_admin_shows_mfa_status_and_never_a_seed_or_code(client):
    staff = UserFactory(password=PASSWORD, is_staff=True, is_superuser=True)
    user = UserFactory(password=PASSWORD)
    secret, codes = _enabled_for(user)
    client.force_login(staff)
    listing = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert "MFA" in listing
    page = client.get(reverse("admin:accounts_user_change", args=[user.pk])).content.decode()
    assert "On since" in page and "10 recovery code(s) left" in page
    device = TotpDevice.objects.get(user=user)
    for text in (listing, page):
        assert secret not in text and device.secret_encrypted not in text
        assert not any(c in text for c in codes)


def test_a_superuser_resets_a_users_factors_audited_and_emailed(client, api_client):
    staff = UserFactory(password=PASSWORD, is_staff=True, is_superuser=True)
    user = UserFactory(password=PASSWORD)
    _enabled_for(user)
    mail.outbox.clear()
    client.force_login(staff)
    response = client.post(reverse("admin:accounts_user_changelist"),
                           {"action": "reset_mfa", "_selected_action": [str(user.pk)]})
    assert response.status_code == 302
    assert not TotpDevice.objects.filter(user=user).exists() and not RecoveryCode.objects.filter(user=user).exists()
    event = AuditEvent.objects.get(action="auth.mfa.reset")
    assert event.actor_id == staff.pk and event.target_id == str(user.pk)
    assert any("turned off" in m.subject.lower() for m in outbox_to(user.email))
    assert "access" in login(api_client, user.email, PASSWORD).json()


@pytest.mark.slow
def test_staff_who_are_not_superusers_cannot_reset_factors(client):
    from django.contrib.auth.models import Permission

    helper = UserFactory(password=PASSWORD, is_staff=True, is_superuser=False)
    helper.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    user = UserFactory(password=PASSWORD)
    _enabled_for(user)
    client.force_login(helper)
    page = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert "reset_mfa" not in page
    client.post(reverse("admin:accounts_user_changelist"),
                {"action": "reset_mfa", "_selected_action": [str(user.pk)]})
    assert TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()
    assert not AuditEvent.objects.filter(action="auth.mfa.reset").exists()


# --- key rotation -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_key_rotation_reseals_the_seeds_and_the_old_key_can_go(settings, api_client):
    old = _key("old")
    settings.FIELD_ENCRYPTION_KEYS = old
    user = UserFactory(password=PASSWORD)
    secret, _ = _enabled_for(user)
    assert TotpDevice.objects.get(user=user).key_id == "old"
    new = _key("new")
    settings.FIELD_ENCRYPTION_KEYS = f"{new},{old}"
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "re-encrypted 1 TOTP seed(s); 0 failed" in out.getvalue()
    device = TotpDevice.objects.get(user=user)
    assert device.key_id == "new" and device.secret_encrypted.startswith("new.")
    assert AuditEvent.objects.filter(action="auth.mfa.keys.rotated", extra__reencrypted=1).exists()
    settings.FIELD_ENCRYPTION_KEYS = new  # the old key is dropped: the factor still works
    token = mfa_token_for(api_client, user.email, PASSWORD)
    assert login_mfa(api_client, token, code_for(secret)).status_code == 200
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "re-encrypted 0 TOTP seed(s)" in out.getvalue()


# --- demo data and checks ------------------------------------------------------------------------------
def test_demo_staff_gets_an_authenticator_and_its_secret_is_printed(client, capsys):
    call_command("load_demo_data")
    out = capsys.readouterr().out
    secret = out.split("Staff TOTP secret: ")[1].split()[0]
    call_command("load_demo_data")
    assert f"Staff TOTP secret: {secret}" in capsys.readouterr().out  # idempotent
    response = client.post("/admin/login/?next=/admin/", {"username": "staff@dashtam.local",
                                                          "password": "Staff-Passw0rd!"})
    assert response["Location"] == "/admin/mfa/"
    assert client.post("/admin/mfa/", {"code": code_for(secret)})["Location"] == "/admin/"


@pytest.mark.parametrize("variable,value", [("MFA_TOKEN_SECONDS", 0), ("MFA_TOKEN_MAX_FAILURES", -1),
                                            ("MFA_RECOVERY_CODE_COUNT", 0), ("MFA_TOKEN_IPV4_PREFIX", 33),
                                            ("MFA_TOKEN_IPV6_PREFIX", 129), ("MFA_TOTP_ISSUER", "")])
def test_a_bad_mfa_setting_fails_the_checks_naming_it(settings, variable, value):
    from accounts.checks import check_mfa

    setattr(settings, variable, value)
    errors = check_mfa()
    assert errors and errors[0].msg.startswith(variable)


# --- concurrency ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_one_recovery_code_used_concurrently_succeeds_exactly_once(settings):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under concurrency are tested on PostgreSQL (SQLite serialises every write)")
    from rest_framework.test import APIClient

    settings.RATELIMIT_ENABLE = False
    user = UserFactory(password=PASSWORD)
    _, codes = _enabled_for(user)
    tokens = [mfa_token_for(APIClient(), user.email, PASSWORD) for _ in range(6)]
    barrier = threading.Barrier(len(tokens))
    results: list[int] = []

    def attempt(token):
        from django.db import connections

        try:
            barrier.wait()
            results.append(login_mfa(APIClient(), token, codes[0]).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [401] * (len(tokens) - 1)
    assert RecoveryCode.objects.filter(user=user, used_at__isnull=False).count() == 1
    assert AuditEvent.objects.filter(action="auth.mfa.recovery_code.used").count() == 1
    assert mfa_services.mfa_status(user=user)["recovery_codes"]["remaining"] == 9


def test_the_admin_login_route_keeps_its_name_and_serves_the_two_step_login():
    from django.urls import resolve

    from accounts.mfa.admin_login import admin_login

    match = resolve("/admin/login/")
    assert match.view_name == "admin:login"  # what the login rate limit and lockout rules name
    assert match.func is admin_login
