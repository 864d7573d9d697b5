"""One canonical spelling per address: look-alikes neither create second accounts nor dodge the lockout.

Issue 12 §1. ``uſer`` (U+017F) and ``ıvan`` (U+0131) survived ``lower()`` while PostgreSQL's
``UPPER()`` folded them onto ``user`` / ``ivan``: a look-alike registration turned every login
of the real account into a 500, and each spelling had its own lockout counter.
"""

from __future__ import annotations

import importlib
import json
import uuid

import pytest
from axes.models import AccessAttempt
from django.apps import apps as global_apps
from django.core import mail

from accounts.email_address import canonical_email
from accounts.models import AccountToken, User
from audit.models import AuditEvent
from tests.accounts.conftest import login, outbox_to
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
WRONG = "Wrong-Password-1!"


@pytest.mark.parametrize(("typed", "canonical"), [
    ("user@example.com", "user@example.com"),
    ("  User@Example.COM ", "user@example.com"),
    ("u\u017fer@example.com", "user@example.com"),          # long s
    ("\u0131van@example.com", "ivan@example.com"),           # dotless i
    ("\uff35\uff33\uff25\uff32@example.com", "user@example.com"),  # full-width letters
    ("someone@ex\u00e4mple.com", "someone@xn--exmple-cua.com"),   # IDN domain -> punycode
    ("someone@EX\u00c4MPLE.com", "someone@xn--exmple-cua.com"),
])
def test_every_spelling_has_one_canonical_form(typed, canonical):
    assert canonical_email(typed) == canonical
    assert canonical_email(canonical) == canonical


def register(client, email, password):
    return client.post("/api/v1/auth/register", {"email": email, "password": password}, format="json")


@pytest.fixture
def ivan(db, password):
    return UserFactory(email="ivan@example.com", password=password)


@pytest.mark.parametrize("lookalike", ["u\u017fer@example.com", "U\u017fER@example.com", "\uff55ser@example.com"])
def test_a_lookalike_registration_is_refused_and_the_real_login_keeps_working(
    api_client, client, password, lookalike,
):
    real = UserFactory(email="user@example.com", password=password, is_staff=True, is_superuser=True)
    response = register(api_client, lookalike, "Another-Secret-77-Horse")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert "ASCII" in body["errors"]["email"][0]
    assert list(User.objects.values_list("email", flat=True)) == ["user@example.com"]
    # The real owner still signs in, through the API and the admin alike.
    assert login(api_client, "user@example.com", password).status_code == 200
    admin = client.post("/admin/login/", {"username": "user@example.com", "password": password})
    assert admin.status_code == 302
    assert real.email == "user@example.com"


def test_a_dotless_i_registration_is_refused(api_client, ivan, password):
    response = register(api_client, "\u0131van@example.com", "Another-Secret-77-Horse")
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert User.objects.count() == 1
    assert login(api_client, "ivan@example.com", password).status_code == 200


def test_a_lookalike_row_left_by_old_data_never_breaks_the_real_login(api_client, client, password):
    """Even with a look-alike row in the table (written past every check), the lookup is an
    exact match on the canonical form: one row answers, never a 500."""
    real = UserFactory(email="user@example.com", password=password, is_staff=True, is_superuser=True)
    impostor = UserFactory(email="other@example.com", password="Impostor-Passw0rd!")
    User.objects.filter(pk=impostor.pk).update(email="u\u017fer@example.com")
    response = login(api_client, "user@example.com", password)
    assert response.status_code == 200
    assert response.json()["user"]["id"] == str(real.pk)
    assert client.post("/admin/login/", {"username": "user@example.com", "password": password}).status_code == 302
    assert login(api_client, "user@example.com", "Impostor-Passw0rd!").status_code == 401


@pytest.mark.parametrize("spelling", [
    "USER@EXAMPLE.COM", "u\u017fer@example.com", "\uff35\uff33\uff25\uff32@example.com", " user@Example.com ",
])
def test_any_spelling_that_folds_to_the_address_reaches_the_one_account(api_client, password, spelling):
    real = UserFactory(email="user@example.com", password=password)
    response = login(api_client, spelling, password)
    assert response.status_code == 200
    assert response.json()["user"]["id"] == str(real.pk)


def test_failures_through_every_spelling_count_toward_one_lockout_and_the_owner_is_told(
    api_client, client, ivan, password, django_capture_on_commit_callbacks,
):
    spellings = ["ivan@example.com", "IVAN@example.com", "\u0131van@example.com", "\u0131VAN@EXAMPLE.COM",
                 "\uff49van@example.com", "ivan@EXAMPLE.com", " Ivan@example.com"]
    with django_capture_on_commit_callbacks(execute=True):
        statuses = [login(api_client, spellings[n % len(spellings)], WRONG).status_code for n in range(7)]
        # ... and the admin's login form, with its own look-alikes, counts toward the same lock.
        for spelling in ("\u0131van@example.com", "IVAN@example.com", "ivan@ex\u0041mple.com"):
            statuses.append(client.post("/admin/login/", {"username": spelling, "password": WRONG}).status_code)
    assert statuses[:7] == [401] * 7
    assert statuses[7:9] == [200, 200]  # the admin form re-displays itself
    assert statuses[9] == 429
    assert set(AccessAttempt.objects.values_list("username", flat=True)) == {"ivan@example.com"}
    locked = login(api_client, "ivan@example.com", password)
    assert locked.status_code == 429
    assert locked.json()["code"] == "ACCOUNT_LOCKED"
    assert login(api_client, "\u0131van@example.com", password).status_code == 429
    [notice] = outbox_to("ivan@example.com")
    assert "locked" in notice.subject
    assert len(mail.outbox) == 1
    assert AuditEvent.objects.filter(action="auth.lockout", target_id=str(ivan.pk)).count() == 1


def test_an_idn_domain_is_stored_as_punycode_and_found_in_any_spelling(api_client, password):
    response = register(api_client, "Someone@EX\u00c4MPLE.com", "Another-Secret-77-Horse")
    assert response.status_code == 202
    user = User.objects.get()
    assert user.email == "someone@xn--exmple-cua.com"
    User.objects.filter(pk=user.pk).update(email_verified_at=user.date_joined)
    assert login(api_client, "someone@ex\u00e4mple.com", "Another-Secret-77-Horse").status_code == 200
    assert login(api_client, "someone@xn--exmple-cua.com", "Another-Secret-77-Horse").status_code == 200


def test_registering_another_spelling_of_a_taken_address_is_the_duplicate_path(api_client, user):
    response = register(api_client, user.email.upper(), "Another-Secret-77-Horse")
    assert response.status_code == 202
    assert User.objects.count() == 1
    assert AuditEvent.objects.filter(action="auth.register.duplicate", target_id=str(user.pk)).exists()


def test_reset_and_resend_reach_the_account_through_any_spelling(
    api_client, user, django_capture_on_commit_callbacks,
):
    spelling = user.email.upper().replace("S", "\u017f")
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/v1/auth/request-password-reset", {"email": spelling}, format="json")
    assert response.status_code == 202
    [reset] = outbox_to(user.email)
    assert "reset" in reset.subject.lower()


def test_an_email_change_to_a_lookalike_is_refused_and_a_new_address_is_stored_canonical(
    api_client, user, password,
):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {login(api_client, user.email, password).json()['access']}")
    refused = api_client.patch("/api/v1/auth/me", {"email": "u\u017fer2@example.com", "current_password": password},
                               format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "VALIDATION_ERROR"
    assert "email" in refused.json()["errors"]
    accepted = api_client.patch("/api/v1/auth/me", {"email": "New.Owner@EXAMPLE.com", "current_password": password},
                                format="json")
    assert accepted.status_code == 200
    token = AccountToken.objects.get(user=user, purpose=AccountToken.Purpose.CHANGE_EMAIL)
    assert token.new_email == "new.owner@example.com"


def test_the_admin_search_finds_an_address_in_any_spelling(client, staff_user, password):
    target = UserFactory(email="findme@example.com")
    client.force_login(staff_user)
    for term in ("FINDME@Example.com", "\uff46indme@example.com", "findme@"):
        page = client.get("/admin/accounts/user/", {"q": term})
        assert page.status_code == 200
        assert list(page.context["cl"].result_list) == [target], term


def test_rate_limit_keys_use_the_canonical_form(api_client, user, settings):
    """The per-address reset budget (3/h) is one budget whatever the spelling."""
    from dashtam.ratelimit import counter

    settings.RATELIMIT_ENABLE = True
    counter.reset_state(namespace=f"identity-key-{uuid.uuid4().hex[:12]}")
    try:
        spellings = [user.email, user.email.upper(), user.email.replace("s", "\u017f"), f" {user.email} "]
        statuses = [api_client.post("/api/v1/auth/request-password-reset", {"email": e}, format="json",
                                    REMOTE_ADDR=f"198.51.100.{n}").status_code
                    for n, e in enumerate(spellings)]
    finally:
        counter.reset_state()
    assert statuses == [202, 202, 202, 429]


# --- The data migration ------------------------------------------------------------------------
def _migration():
    return importlib.import_module("accounts.migrations.0004_email_canonical_form")


def test_the_migration_brings_old_spellings_to_the_canonical_form(db):
    a = UserFactory(email="plain@example.com")
    b = UserFactory(email="other@example.com")
    User.objects.filter(pk=a.pk).update(email="Mixed.Case@Example.COM")
    User.objects.filter(pk=b.pk).update(email="someone@EX\u00c4MPLE.com")
    AccountToken.objects.create(user=a, purpose="change_email", token_hash="x" * 64, new_email="NEW@Example.com",
                                expires_at=a.date_joined)
    _migration().canonicalise_emails(global_apps, None)
    assert set(User.objects.values_list("email", flat=True)) == {"mixed.case@example.com",
                                                                 "someone@xn--exmple-cua.com"}
    assert AccountToken.objects.get().new_email == "new@example.com"
    _migration().canonicalise_emails(global_apps, None)  # idempotent


def test_the_migration_stops_on_a_collision_and_names_both_rows(db):
    real = UserFactory(email="user@example.com")
    impostor = UserFactory(email="placeholder@example.com")
    untouched = UserFactory(email="third@example.com")
    User.objects.filter(pk=untouched.pk).update(email="Third@Example.com")
    User.objects.filter(pk=impostor.pk).update(email="u\u017fer@example.com")
    migration = _migration()
    with pytest.raises(migration.CanonicalEmailCollision) as caught:
        migration.canonicalise_emails(global_apps, None)
    message = str(caught.value)
    assert "user@example.com" in message
    assert str(real.pk) in message and str(impostor.pk) in message
    assert "u\u017fer@example.com" in message
    assert str(untouched.pk) not in message
    # Nothing was changed, nothing merged.
    assert User.objects.get(pk=untouched.pk).email == "Third@Example.com"
    assert User.objects.count() == 3


@pytest.mark.parametrize("email", [
    "a@\ud800.com", "\ud800@x.com", "u\u017fer@\ud800x.com",     # lone surrogates, as JSON can carry them
    "x@" + "\ufdfa" * 40 + ".com", "\ufdfa" * 40 + "@x.com",     # NFKC lengthens these past 254 characters
])
@pytest.mark.parametrize("path", ["login", "register", "request-password-reset", "resend-verification"])
def test_odd_spellings_never_earn_a_500(api_client, settings, email, path):
    from dashtam.ratelimit import counter

    settings.RATELIMIT_ENABLE = True  # the body:email keys are hashed from the canonical form
    counter.reset_state(namespace=f"identity-odd-{uuid.uuid4().hex[:12]}")
    try:
        response = _post_raw(api_client, path, email)
    finally:
        counter.reset_state()
    assert response.status_code < 500, response.content


def _post_raw(api_client, path, email):
    body = json.dumps({"email": email, "password": "Another-Secret-77-Horse"})  # \ud800 escaped, as clients send it
    return api_client.post(f"/api/v1/auth/{path}", body, content_type="application/json")


def test_management_commands_take_any_spelling(api_client, user, password):
    from io import StringIO

    from django.core.management import call_command

    for _ in range(10):
        login(api_client, user.email, WRONG)
    assert login(api_client, user.email, password).status_code == 429
    out = StringIO()
    call_command("unlock_account", user.email.upper().replace("S", "\u017f"), stdout=out)
    assert out.getvalue().startswith(f"{user.email}: removed 1 ")
    assert login(api_client, user.email, password).status_code == 200
    assert AuditEvent.objects.filter(action="auth.lockout.cleared", target_id=str(user.pk)).count() == 1
    call_command("revoke_tokens", "--user", user.email.upper(), "--reason", "test", stdout=StringIO())
    assert AuditEvent.objects.filter(target_id=str(user.pk), action__startswith="session").exists()
