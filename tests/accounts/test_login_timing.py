"""Every login path costs the same hashes (issue 12, login timing).

Tests assert no timings. The access log line of each login counts the full-cost
hash computations by kind (``hash_count_argon2``, ``hash_count_bcrypt``); every
path must show exactly the same counts: one Argon2id, plus one bcrypt while any
account still carries a legacy bcrypt hash. ``bench/login_timing.py`` measures
the medians with production's parameters.
"""

from __future__ import annotations

import logging

import bcrypt
import pytest

from accounts.models import User
from tests.accounts.conftest import login
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "Correct-Horse-9-Battery"
LONG = "Aa1!" + "z" * 100  # 104 bytes: more than bcrypt reads


def hashes_of(api_client, caplog, email, password, status):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dashtam.request"):
        response = login(api_client, email, password)
    assert response.status_code == status, response.content
    (line,) = [r for r in caplog.records if r.name == "dashtam.request"]
    return {kind: getattr(line, f"hash_count_{kind}", 0) for kind in ("argon2", "bcrypt")}


def legacy_user(email: str, rounds: int = 4, via_update: bool = True) -> User:
    user = UserFactory(email=email)
    encoded = "bcrypt$" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds)).decode()
    if via_update:  # as an import would: no save signal
        User.objects.filter(pk=user.pk).update(password=encoded)
    else:
        user.password = encoded
        user.save(update_fields=["password"])
    return user


@pytest.mark.parametrize("via_update", [True, False])
@pytest.mark.parametrize(("path", "email", "password", "status"), [
    ("legacy account, wrong password", "legacy@example.com", "Wrong-Horse-9-Battery", 401),
    ("legacy account, over 72 bytes", "legacy@example.com", LONG, 401),
    ("legacy account, right password", "legacy@example.com", PASSWORD, 200),
    ("unknown email", "nobody@example.com", "Wrong-Horse-9-Battery", 401),
    ("unknown email, over 72 bytes", "nobody@example.com", LONG, 401),
    ("argon2 account, wrong password", "modern@example.com", "Wrong-Horse-9-Battery", 401),
    ("argon2 account, over 72 bytes", "modern@example.com", LONG, 401),
    ("argon2 account, right password", "modern@example.com", PASSWORD, 200),
])
def test_while_legacy_hashes_exist_every_path_costs_one_argon2_and_one_bcrypt(
        api_client, caplog, path, email, password, status, via_update):
    legacy_user("legacy@example.com", via_update=via_update)
    UserFactory(email="modern@example.com", password=PASSWORD)
    assert hashes_of(api_client, caplog, email, password, status) == {"argon2": 1, "bcrypt": 1}, path


@pytest.mark.parametrize(("email", "password", "status"), [
    ("nobody@example.com", "Wrong-Horse-9-Battery", 401),
    ("modern@example.com", "Wrong-Horse-9-Battery", 401),
    ("modern@example.com", LONG, 401),
    ("modern@example.com", PASSWORD, 200),
])
def test_without_legacy_hashes_every_path_costs_one_argon2(api_client, caplog, email, password, status):
    UserFactory(email="modern@example.com", password=PASSWORD)
    assert hashes_of(api_client, caplog, email, password, status) == {"argon2": 1, "bcrypt": 0}


def test_the_dummy_bcrypt_costs_what_the_stored_legacy_hashes_cost(api_client, caplog):
    """The padding for an unknown address uses the legacy hashes' own rounds."""
    from accounts import hashers

    legacy_user("legacy@example.com", rounds=5)
    assert hashers.legacy_bcrypt_rounds() == 5
    legacy_user("older@example.com", rounds=6)
    hashers.reset_process_state()
    assert hashers.legacy_bcrypt_rounds() == 6


def test_once_every_legacy_hash_is_upgraded_the_padding_stops(api_client, caplog, settings):
    settings.PASSWORD_LEGACY_CHECK_SECONDS = 0
    legacy_user("legacy@example.com")
    assert hashes_of(api_client, caplog, "nobody@example.com", "x", 401) == {"argon2": 1, "bcrypt": 1}
    # The right password upgrades the account to Argon2id: no legacy hash is left.
    assert hashes_of(api_client, caplog, "legacy@example.com", PASSWORD, 200) == {"argon2": 1, "bcrypt": 1}
    assert User.objects.get(email="legacy@example.com").password.startswith("argon2$")
    assert hashes_of(api_client, caplog, "nobody@example.com", "x", 401) == {"argon2": 1, "bcrypt": 0}


def test_the_admin_login_costs_the_same_for_known_and_unknown_addresses(client, caplog):
    legacy_user("legacy@example.com")
    staff = UserFactory(email="staff@example.com", password=PASSWORD, is_staff=True)
    seen = []
    for username in (staff.email, "nobody@example.com", "legacy@example.com"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="dashtam.request"):
            response = client.post("/admin/login/", {"username": username, "password": "Wrong-Horse-9-Battery"})
        assert response.status_code in (200, 429)
        (line,) = [r for r in caplog.records if r.name == "dashtam.request"]
        seen.append((getattr(line, "hash_count_argon2", 0), getattr(line, "hash_count_bcrypt", 0)))
    assert seen == [(1, 1)] * 3


def test_a_password_over_72_bytes_against_a_bcrypt_hash_still_computes_bcrypt():
    """The hasher itself (also used by change-password and DELETE me) spends the bcrypt."""
    from django.contrib.auth.hashers import check_password

    from dashtam import context

    encoded = "bcrypt$" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    token = context.set_context(context.RequestContext(request_id="r"))
    try:
        assert check_password(LONG, encoded) is False
        assert context.get().extra["hash_count_bcrypt"] == 1
    finally:
        context.reset(token)


def test_a_legacy_hash_imported_behind_the_processs_back_is_seen_at_the_next_read(api_client, caplog, settings):
    """Rows written without save() (an import) are found when the process next reads."""
    settings.PASSWORD_LEGACY_CHECK_SECONDS = 300
    assert hashes_of(api_client, caplog, "nobody@example.com", "x", 401) == {"argon2": 1, "bcrypt": 0}
    legacy_user("legacy@example.com")  # via update(): this process is not told
    assert hashes_of(api_client, caplog, "nobody@example.com", "x", 401) == {"argon2": 1, "bcrypt": 0}
    settings.PASSWORD_LEGACY_CHECK_SECONDS = 0
    assert hashes_of(api_client, caplog, "nobody@example.com", "x", 401) == {"argon2": 1, "bcrypt": 1}
