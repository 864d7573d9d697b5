"""Passkeys (WebAuthn) through the real HTTP stack, with a software authenticator in the test.

Registration, sign-in with and without an email, replayed challenges, the wrong
origin and RP ID, a sign counter going backwards, another user's credential,
renaming and deletion; what the user sees (status, body), the rows, the audit
trail and the emails.
"""

from __future__ import annotations

import pytest

from accounts.passkeys.models import Passkey
from audit.models import AuditEvent
from tests.accounts.conftest import login, outbox_to
from tests.accounts.soft_authenticator import SoftAuthenticator, b64url, unb64url
from tests.factories import UserFactory

ORIGIN = "http://localhost:8000"
BASE = "/api/v1/auth/passkeys"


@pytest.fixture(autouse=True)
def _relying_party(settings):
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.WEBAUTHN_RP_NAME = "Dashtam"
    settings.WEBAUTHN_ORIGINS = [ORIGIN]


@pytest.fixture
def authenticator():
    return SoftAuthenticator(origin=ORIGIN)


def bearer(api_client, user, password):
    response = login(api_client, user.email, password)
    assert response.status_code == 200, response.content
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    return api_client


def register(client, authenticator, name="My laptop", **create_kwargs):
    options = client.post(f"{BASE}/registration/options", {}, format="json")
    assert options.status_code == 200, options.content
    credential = authenticator.create(options.json(), **create_kwargs)
    return client.post(f"{BASE}/registration", {"credential": credential, "name": name}, format="json")


def sign_in(client, authenticator, body=None, **get_kwargs):
    options = client.post(f"{BASE}/authentication/options", body or {}, format="json")
    assert options.status_code == 200, options.content
    assertion = authenticator.get(options.json(), **get_kwargs)
    return client.post(f"{BASE}/authentication", {"credential": assertion}, format="json"), assertion


@pytest.fixture
def enrolled(api_client, user, password, authenticator, django_capture_on_commit_callbacks):
    """``user`` with one passkey on ``authenticator``; returns the bearer client."""
    client = bearer(api_client, user, password)
    with django_capture_on_commit_callbacks(execute=True):
        response = register(client, authenticator)
    assert response.status_code == 201, response.content
    return client


def anonymous():
    from rest_framework.test import APIClient

    return APIClient()


# --- registration ------------------------------------------------------------------------------
def test_registration_options_follow_the_relying_party_settings(api_client, user, password):
    client = bearer(api_client, user, password)
    response = client.post(f"{BASE}/registration/options", {}, format="json")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("no-store")
    options = response.json()
    assert options["rp"] == {"id": "localhost", "name": "Dashtam"}
    assert options["user"]["name"] == user.email
    assert unb64url(options["user"]["id"]) == user.pk.bytes
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none"
    assert len(unb64url(options["challenge"])) == 32
    assert options["timeout"] <= 300_000


def test_registration_options_need_a_bearer(api_client):
    response = api_client.post(f"{BASE}/registration/options", {}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "NOT_AUTHENTICATED"


def test_a_passkey_is_registered_stored_audited_and_emailed(
    api_client, user, password, authenticator, django_capture_on_commit_callbacks,
):
    client = bearer(api_client, user, password)
    with django_capture_on_commit_callbacks(execute=True):
        response = register(client, authenticator, name="  Work   phone ")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= {"id", "name", "created_at", "last_used_at"}
    assert body["name"] == "Work phone" and body["last_used_at"] is None
    row = Passkey.objects.get(pk=body["id"])
    assert row.user_id == user.pk
    assert row.credential_id == b64url(next(iter(authenticator.credentials)))
    assert row.sign_count == 0 and row.transports == ["internal", "hybrid"]
    assert row.aaguid == "00112233-4455-6677-8899-aabbccddeeff"
    assert row.backup_eligible and row.backed_up
    event = AuditEvent.objects.get(action="auth.passkey.registered")
    assert event.actor_id == user.pk and event.extra["name"] == "Work phone"
    assert "passkey was added" in outbox_to(user.email)[-1].subject
    listed = client.get(BASE)
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()] == [body["id"]]
    # Next time, the existing passkey is excluded.
    options = client.post(f"{BASE}/registration/options", {}, format="json").json()
    assert [c["id"] for c in options["excludeCredentials"]] == [row.credential_id]


def test_a_registration_challenge_works_once(api_client, user, password, authenticator):
    client = bearer(api_client, user, password)
    options = client.post(f"{BASE}/registration/options", {}, format="json").json()
    first = client.post(f"{BASE}/registration", {"credential": authenticator.create(options)}, format="json")
    assert first.status_code == 201
    replay = client.post(f"{BASE}/registration", {"credential": authenticator.create(options)}, format="json")
    assert replay.status_code == 400
    assert replay.json()["code"] == "VALIDATION_ERROR" and "credential" in replay.json()["errors"]
    assert Passkey.objects.filter(user=user).count() == 1
    assert AuditEvent.objects.filter(action="auth.passkey.failed", extra__reason="challenge_unknown_or_used").exists()


@pytest.mark.parametrize("bad", [{"origin": "https://evil.example"}, {"rp_id": "evil.example"}])
@pytest.mark.slow
def test_a_registration_from_the_wrong_origin_or_rp_id_is_refused(api_client, user, password, authenticator, bad):
    client = bearer(api_client, user, password)
    response = register(client, authenticator, **bad)
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert not Passkey.objects.exists()
    assert AuditEvent.objects.filter(action="auth.passkey.failed", outcome="failure").exists()


@pytest.mark.slow
def test_a_registration_challenge_of_another_user_is_refused(api_client, user, password, authenticator):
    other = UserFactory(password=password)
    other_client = bearer(anonymous(), other, password)
    options = other_client.post(f"{BASE}/registration/options", {}, format="json").json()
    client = bearer(api_client, user, password)
    response = client.post(f"{BASE}/registration", {"credential": authenticator.create(options)}, format="json")
    assert response.status_code == 400
    assert not Passkey.objects.exists()


def test_the_same_credential_cannot_be_registered_twice(api_client, user, password, authenticator):
    client = bearer(api_client, user, password)
    options = client.post(f"{BASE}/registration/options", {}, format="json").json()
    credential = authenticator.create(options)
    assert client.post(f"{BASE}/registration", {"credential": credential}, format="json").status_code == 201
    options = client.post(f"{BASE}/registration/options", {}, format="json").json()
    again = authenticator.create(options, credential_id=unb64url(credential["id"]))
    response = client.post(f"{BASE}/registration", {"credential": again}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "CONFLICT"
    assert Passkey.objects.filter(user=user).count() == 1


def test_a_credential_id_that_differs_from_the_attested_one_is_refused(api_client, user, password, authenticator):
    client = bearer(api_client, user, password)
    options = client.post(f"{BASE}/registration/options", {}, format="json").json()
    credential = authenticator.create(options)
    credential["id"] = credential["rawId"] = b64url(b"claimed-id")
    response = client.post(f"{BASE}/registration", {"credential": credential}, format="json")
    assert response.status_code == 400
    assert not Passkey.objects.exists()


@pytest.mark.parametrize("payload", [
    {"credential": "not an object"}, {"credential": None}, {"credential": {}},
    {"credential": {"id": 1, "rawId": [], "response": "x", "type": "public-key"}},
    {"credential": {"id": "a", "rawId": "a", "type": "public-key",
                    "response": {"clientDataJSON": "!!!", "attestationObject": "###"}}},
    {"name": "x"},
])
def test_malformed_registrations_are_validation_errors(api_client, user, password, payload):
    client = bearer(api_client, user, password)
    response = client.post(f"{BASE}/registration", payload, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_a_name_with_control_characters_or_too_long_is_refused(api_client, user, password, authenticator):
    client = bearer(api_client, user, password)
    for name in ["a\x00b", "x" * 65, "   "]:
        response = register(client, authenticator, name=name)
        assert response.status_code == 400, name
        assert "name" in response.json()["errors"]


# --- sign-in ---------------------------------------------------------------------------------
def test_usernameless_sign_in_ends_in_the_login_response(enrolled, user, authenticator):
    client = anonymous()
    options = client.post(f"{BASE}/authentication/options", {}, format="json")
    assert options.status_code == 200 and options["Cache-Control"].startswith("no-store")
    assert options.json()["rpId"] == "localhost"
    assert options.json().get("allowCredentials", []) == []
    response = client.post(f"{BASE}/authentication", {"credential": authenticator.get(options.json())},
                           format="json")
    assert response.status_code == 200, response.content
    assert response["Cache-Control"].startswith("no-store")
    body = response.json()
    assert body["token_type"] == "Bearer" and body["user"]["email"] == user.email
    assert {"access", "refresh", "expires_in", "session_id"} <= set(body)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    sessions = client.get("/api/v1/auth/sessions")
    assert sessions.status_code == 200
    current = [s for s in sessions.json() if s["is_current"]]
    assert len(current) == 1 and current[0]["id"] == body["session_id"]
    passkey = Passkey.objects.get(user=user)
    assert passkey.sign_count == 1 and passkey.last_used_at is not None
    assert AuditEvent.objects.filter(action="auth.login.succeeded", actor=user).exists()


def test_sign_in_with_an_email_allows_only_that_accounts_passkeys(enrolled, user, authenticator):
    client = anonymous()
    options = client.post(f"{BASE}/authentication/options", {"email": user.email.upper()}, format="json").json()
    assert [c["id"] for c in options["allowCredentials"]] == [Passkey.objects.get(user=user).credential_id]
    response = client.post(f"{BASE}/authentication", {"credential": authenticator.get(options)}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["user"]["id"] == str(user.pk)


def test_options_for_an_unknown_address_look_like_a_known_one(db):
    client = anonymous()
    first = client.post(f"{BASE}/authentication/options", {"email": "nobody@example.com"}, format="json")
    again = client.post(f"{BASE}/authentication/options", {"email": "nobody@example.com"}, format="json")
    assert first.status_code == again.status_code == 200
    assert len(first.json()["allowCredentials"]) == 1
    assert first.json()["allowCredentials"] == again.json()["allowCredentials"]  # stable, so it cannot be told
    assert first.json()["challenge"] != again.json()["challenge"]


def test_an_authentication_challenge_works_once(enrolled, user, authenticator):
    client = anonymous()
    first, assertion = sign_in(client, authenticator)
    assert first.status_code == 200
    replay = client.post(f"{BASE}/authentication", {"credential": assertion}, format="json")
    assert replay.status_code == 401
    assert replay.json()["code"] == "TOKEN_INVALID"
    # A fresh assertion over the spent challenge (higher counter, valid signature) is refused too.
    options = {"challenge": assertion and __import__("json").loads(unb64url(
        assertion["response"]["clientDataJSON"]))["challenge"]}
    fresh = client.post(f"{BASE}/authentication", {"credential": authenticator.get(options)}, format="json")
    assert fresh.status_code == 401 and fresh.json()["code"] == "TOKEN_INVALID"
    assert AuditEvent.objects.filter(action="auth.passkey.failed", extra__reason="challenge_unknown_or_used").count() == 2


def test_an_invented_challenge_is_refused(enrolled, authenticator):
    response = anonymous().post(f"{BASE}/authentication", {
        "credential": authenticator.get({"challenge": b64url(b"x" * 32)})}, format="json")
    assert response.status_code == 401 and response.json()["code"] == "TOKEN_INVALID"


@pytest.mark.parametrize("bad", [{"origin": "https://evil.example"}, {"origin": "http://localhost:8001"},
                                 {"rp_id": "evil.example"}])
def test_a_sign_in_from_the_wrong_origin_or_rp_id_is_refused(enrolled, user, authenticator, bad):
    response, _ = sign_in(anonymous(), authenticator, **bad)
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_CREDENTIALS"
    assert "access" not in response.json()
    assert AuditEvent.objects.filter(action="auth.passkey.failed", actor=user,
                                     extra__reason__startswith="verification_failed").exists()
    assert Passkey.objects.get(user=user).sign_count == 0


def test_a_signature_from_another_key_is_refused(enrolled, user, authenticator):
    from cryptography.hazmat.primitives.asymmetric import ec

    credential = next(iter(authenticator.credentials.values()))
    credential.key = ec.generate_private_key(ec.SECP256R1())
    response, _ = sign_in(anonymous(), authenticator)
    assert response.status_code == 401 and response.json()["code"] == "INVALID_CREDENTIALS"


def test_a_sign_counter_going_backwards_is_refused_and_audited(enrolled, user, authenticator):
    client = anonymous()
    assert sign_in(client, authenticator, sign_count=5)[0].status_code == 200
    response, _ = sign_in(client, authenticator, sign_count=3)
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_INVALID"
    event = AuditEvent.objects.get(action="auth.passkey.counter_regressed")
    assert event.outcome == "denied" and event.actor_id == user.pk
    assert Passkey.objects.get(user=user).sign_count == 5
    same, _ = sign_in(client, authenticator, sign_count=5)
    assert same.status_code == 401 and same.json()["code"] == "TOKEN_INVALID"
    assert sign_in(client, authenticator, sign_count=6)[0].status_code == 200


@pytest.mark.slow
def test_another_users_credential_cannot_answer_for_an_email(enrolled, user, password, authenticator,
                                                             django_capture_on_commit_callbacks):
    other = UserFactory(password=password)
    other_device = SoftAuthenticator(origin=ORIGIN)
    with django_capture_on_commit_callbacks(execute=True):
        assert register(bearer(anonymous(), other, password), other_device).status_code == 201
    client = anonymous()
    options = client.post(f"{BASE}/authentication/options", {"email": user.email}, format="json").json()
    # The other user's authenticator signs the challenge that was issued for ``user``.
    assertion = other_device.get(options, credential=next(iter(other_device.credentials.values())))
    response = client.post(f"{BASE}/authentication", {"credential": assertion}, format="json")
    assert response.status_code == 401
    assert AuditEvent.objects.filter(action="auth.passkey.failed", extra__reason="credential_of_another_user").exists()


def test_a_user_handle_of_another_account_is_refused(enrolled, user, authenticator):
    client = anonymous()
    options = client.post(f"{BASE}/authentication/options", {}, format="json").json()
    assertion = authenticator.get(options)
    assertion["response"]["userHandle"] = b64url(UserFactory().pk.bytes)
    response = client.post(f"{BASE}/authentication", {"credential": assertion}, format="json")
    assert response.status_code == 401


def test_an_unknown_credential_is_refused(db, authenticator):
    client = anonymous()
    options = {"rp": {"id": "localhost"}, "user": {"id": b64url(b"u" * 16)}, "challenge": b64url(b"c" * 32)}
    authenticator.create(options)  # a credential the server never saw
    response, _ = sign_in(client, authenticator)
    assert response.status_code == 401 and response.json()["code"] == "INVALID_CREDENTIALS"


@pytest.mark.slow
def test_a_deactivated_or_unverified_account_cannot_sign_in(enrolled, user, authenticator):
    user.email_verified_at = None
    user.save(update_fields=["email_verified_at"])
    response, _ = sign_in(anonymous(), authenticator)
    assert response.status_code == 403 and response.json()["code"] == "EMAIL_NOT_VERIFIED"
    user.is_active = False
    user.save(update_fields=["is_active"])
    response, _ = sign_in(anonymous(), authenticator)
    assert response.status_code == 401


@pytest.mark.slow
def test_a_locked_account_cannot_sign_in_with_a_passkey(enrolled, user, authenticator, settings):
    settings.LOCKOUT_FAILURE_LIMIT = 2
    client = anonymous()
    for _ in range(2):
        login(client, user.email, "wrong-password")
    response, _ = sign_in(client, authenticator)
    assert response.status_code == 429
    assert response.json()["code"] == "ACCOUNT_LOCKED" and int(response["Retry-After"]) > 0


@pytest.mark.parametrize("payload", [{}, {"credential": []}, {"credential": "x"},
                                     {"credential": {"id": "x", "rawId": "x", "type": "public-key",
                                                     "response": {"clientDataJSON": "e30"}}}])
def test_malformed_assertions_are_answered_without_a_500(db, payload):
    response = anonymous().post(f"{BASE}/authentication", payload, format="json")
    assert response.status_code in (400, 401)
    assert response["Content-Type"] == "application/problem+json"


# --- management ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_rename_is_audited_emailed_and_another_users_id_is_404(
    enrolled, user, password, django_capture_on_commit_callbacks,
):
    passkey = Passkey.objects.get(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        response = enrolled.patch(f"{BASE}/{passkey.pk}", {"name": "Old phone"}, format="json")
    assert response.status_code == 200 and response.json()["name"] == "Old phone"
    assert AuditEvent.objects.filter(action="auth.passkey.renamed", extra__name="Old phone").exists()
    assert "renamed" in outbox_to(user.email)[-1].subject
    stranger = bearer(anonymous(), UserFactory(password=password), password)
    assert stranger.patch(f"{BASE}/{passkey.pk}", {"name": "Mine"}, format="json").status_code == 404
    assert stranger.get(BASE).json() == []
    assert Passkey.objects.get(pk=passkey.pk).name == "Old phone"


@pytest.mark.slow
def test_delete_needs_the_password_and_is_audited_and_emailed(
    enrolled, user, password, authenticator, django_capture_on_commit_callbacks,
):
    passkey = Passkey.objects.get(user=user)
    wrong = enrolled.delete(f"{BASE}/{passkey.pk}", {"password": "not-it"}, format="json")
    assert wrong.status_code == 400 and "password" in wrong.json()["errors"]
    missing = enrolled.delete(f"{BASE}/{passkey.pk}", {}, format="json")
    assert missing.status_code == 400
    assert Passkey.objects.filter(pk=passkey.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = enrolled.delete(f"{BASE}/{passkey.pk}", {"password": password}, format="json")
    assert response.status_code == 204
    assert not Passkey.objects.filter(pk=passkey.pk).exists()
    event = AuditEvent.objects.get(action="auth.passkey.deleted")
    assert event.extra["passkey_id"] == str(passkey.pk) and event.extra["remaining"] == 0
    assert "removed" in outbox_to(user.email)[-1].subject
    # The deleted passkey no longer signs in.
    response, _ = sign_in(anonymous(), authenticator)
    assert response.status_code == 401


def test_deleting_another_users_passkey_is_404(enrolled, user, password):
    passkey = Passkey.objects.get(user=user)
    other = UserFactory(password=password)
    response = bearer(anonymous(), other, password).delete(f"{BASE}/{passkey.pk}", {"password": password},
                                                           format="json")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
    assert Passkey.objects.filter(pk=passkey.pk).exists()


def test_an_account_without_a_password_deletes_with_a_fresh_assertion(enrolled, user, authenticator):
    user.set_unusable_password()
    user.save(update_fields=["password"])
    passkey = Passkey.objects.get(user=user)
    refused = enrolled.delete(f"{BASE}/{passkey.pk}", {"password": "anything"}, format="json")
    assert refused.status_code == 400 and "passkey" in refused.json()["errors"]
    options = anonymous().post(f"{BASE}/authentication/options", {"email": user.email}, format="json").json()
    response = enrolled.delete(f"{BASE}/{passkey.pk}", {"passkey": authenticator.get(options)}, format="json")
    assert response.status_code == 204
    assert not Passkey.objects.filter(user=user).exists()


# --- configuration and rate limits ----------------------------------------------------------------------
def test_a_relying_party_that_browsers_would_refuse_fails_the_checks(settings):
    from accounts.passkeys.checks import check_webauthn

    assert check_webauthn() == []
    settings.WEBAUTHN_ORIGINS = ["https://app.example.com", "http://intranet.example.com", "ftp://x"]
    settings.WEBAUTHN_CHALLENGE_SECONDS = 900
    messages = " ".join(e.msg for e in check_webauthn())
    assert "WEBAUTHN_ORIGINS" in messages and "WEBAUTHN_CHALLENGE_SECONDS" in messages
    settings.WEBAUTHN_RP_ID = "https://example.com"
    assert any("WEBAUTHN_RP_ID" in e.msg for e in check_webauthn())


@pytest.mark.slow
def test_options_and_verification_are_rate_limited_per_ip(db, settings):
    settings.RATELIMIT_ENABLE = True
    client = anonymous()
    codes = [client.post(f"{BASE}/authentication/options", {}, format="json").status_code for _ in range(11)]
    assert codes[:10] == [200] * 10 and codes[10] == 429
    limited = client.post(f"{BASE}/authentication/options", {}, format="json")
    assert limited.json()["code"] == "RATE_LIMITED" and int(limited["Retry-After"]) > 0
    codes = [client.post(f"{BASE}/authentication", {"credential": {}}, format="json").status_code
             for _ in range(21)]
    assert 429 not in codes[:20] and codes[20] == 429


@pytest.mark.slow
def test_staff_see_passkeys_read_only_without_key_material(enrolled, user, staff_user, client):
    client.force_login(staff_user)
    passkey = Passkey.objects.get(user=user)
    listing = client.get("/admin/passkeys/passkey/")
    assert listing.status_code == 200 and user.email in listing.content.decode()
    page = client.get(f"/admin/passkeys/passkey/{passkey.pk}/change/")
    assert page.status_code == 200
    assert passkey.credential_id not in page.content.decode()
    assert client.get("/admin/passkeys/passkey/add/").status_code == 403
    assert client.post(f"/admin/passkeys/passkey/{passkey.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Passkey.objects.filter(pk=passkey.pk).exists()


@pytest.mark.slow
def test_one_assertion_sent_concurrently_signs_in_once(transactional_db, password, authenticator):
    """The challenge is spent by one request only (PostgreSQL + Redis; the cache's delete decides)."""
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("threads against one database need PostgreSQL")
    user = UserFactory(password=password)
    assert register(bearer(anonymous(), user, password), authenticator).status_code == 201
    options = anonymous().post(f"{BASE}/authentication/options", {}, format="json").json()
    assertion = authenticator.get(options)
    count = 5
    barrier = threading.Barrier(count)
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt():
        client = anonymous()
        barrier.wait()
        try:
            status = client.post(f"{BASE}/authentication", {"credential": assertion}, format="json").status_code
            with lock:
                statuses.append(status)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [401] * (count - 1)
    assert AuditEvent.objects.filter(action="auth.login.succeeded", actor=user).count() == 2  # password + passkey


@pytest.mark.slow
def test_an_expired_challenge_is_refused(enrolled, authenticator, settings):
    from django.core.cache import cache
    from webauthn.helpers import base64url_to_bytes

    from accounts.passkeys import challenges
    from tests.conftest import wait_until

    settings.WEBAUTHN_CHALLENGE_SECONDS = 1
    client = anonymous()
    options = client.post(f"{BASE}/authentication/options", {}, format="json").json()
    # Until the cache itself has expired the entry (no fixed sleep to race its lifetime).
    key = challenges._key(base64url_to_bytes(options["challenge"]))
    wait_until(lambda: cache.get(key) is None, timeout=10, interval=0.05)
    response = client.post(f"{BASE}/authentication", {"credential": authenticator.get(options)}, format="json")
    assert response.status_code == 401 and response.json()["code"] == "TOKEN_INVALID"
