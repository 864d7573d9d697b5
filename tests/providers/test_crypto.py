"""AES-256-GCM at rest, key ids, associated data, and online key rotation."""

from __future__ import annotations

import base64
import io
import os

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEvent
from dashtam import crypto
from providers.models import ProviderToken
from providers.services import token_access_plaintext
from tests.factories import ProviderTokenFactory
from tests.providers.conftest import connected


def _key(kid: str) -> str:
    return f"{kid}:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def test_values_carry_the_key_id_and_a_fresh_nonce(settings):
    settings.FIELD_ENCRYPTION_KEYS = _key("k1")
    a = crypto.encrypt("secret-value", aad="row:1")
    b = crypto.encrypt("secret-value", aad="row:1")
    assert a.startswith("k1.") and b.startswith("k1.") and a != b
    assert "secret-value" not in a
    assert crypto.decrypt(a, aad="row:1") == "secret-value"


def test_associated_data_binds_the_value_to_its_row(settings):
    settings.FIELD_ENCRYPTION_KEYS = _key("k1")
    sealed = crypto.encrypt("secret-value", aad="row:1")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(sealed, aad="row:2")


def test_tampering_and_unknown_keys_fail(settings):
    settings.FIELD_ENCRYPTION_KEYS = _key("k1")
    sealed = crypto.encrypt("secret-value", aad="x")
    kid, body = sealed.split(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-1] ^= 1
    tampered = kid + "." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    for bad in (tampered, "k9." + body, "garbage", "k1.!!"):
        with pytest.raises(crypto.DecryptionError) as caught:
            crypto.decrypt(bad, aad="x")
        assert "secret-value" not in str(caught.value)


def test_generate_encryption_key_prints_a_valid_entry():
    from dashtam.config import parse_encryption_keys

    out = io.StringIO()
    call_command("generate_encryption_key", "--kid", "k2026", stdout=out)
    ring, problems = parse_encryption_keys(out.getvalue().strip())
    assert problems == [] and ring[0][0] == "k2026" and len(ring[0][1]) == 32


@pytest.mark.django_db
@pytest.mark.slow
def test_rotation_reencrypts_every_token_and_the_old_key_can_go(settings, user):
    old = _key("old")
    settings.FIELD_ENCRYPTION_KEYS = old
    ids = [ProviderTokenFactory(connection__user=user, connection__alias=f"A{i}").connection_id for i in range(3)]
    plain = {t.pk: token_access_plaintext(token=t) for t in ProviderToken.objects.all()}
    assert set(ProviderToken.objects.values_list("key_id", flat=True)) == {"old"}

    new = _key("new")
    settings.FIELD_ENCRYPTION_KEYS = f"{new},{old}"  # newest first
    out = io.StringIO()
    call_command("rotate_encryption_keys", "--batch-size", "2", stdout=out)
    assert "3 token(s) to re-encrypt" in out.getvalue()
    assert "[" in out.getvalue() and "3/3" in out.getvalue()
    assert set(ProviderToken.objects.values_list("key_id", flat=True)) == {"new"}
    # Resumable: a second run finds nothing left.
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "0 token(s) to re-encrypt" in out.getvalue()

    settings.FIELD_ENCRYPTION_KEYS = new  # the old key is dropped
    for token in ProviderToken.objects.all():
        assert token_access_plaintext(token=token) == plain[token.pk]
        assert token.access_token_encrypted.startswith("new.")
    assert AuditEvent.objects.filter(action="provider.keys.rotated", extra__reencrypted=3).exists()
    assert len(ids) == 3


@pytest.mark.integration
@pytest.mark.django_db
def test_tokens_are_never_in_the_raw_columns(user, schwab):
    connected(schwab, user)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token_encrypted, refresh_token_encrypted FROM providers_providertoken")
        rows = cursor.fetchall()
    issued = schwab.issued[-1]
    dump = repr(rows)
    assert issued["access_token"] not in dump and issued["refresh_token"] not in dump


@pytest.mark.django_db
def test_rotation_also_reseals_authorizations_in_flight(settings, auth_client):
    from providers.models import OAuthState

    settings.SANDBOX_PROVIDER_ENABLED = True
    old = _key("old")
    settings.FIELD_ENCRYPTION_KEYS = old
    created = auth_client.post("/api/v1/providers", {"provider_key": "sandbox", "alias": "S"}, format="json")
    assert created.status_code == 201
    state = OAuthState.objects.get()
    aad = f"providers.OAuthState:{state.pk}:verifier"
    verifier = crypto.decrypt(state.code_verifier_encrypted, aad=aad)
    new = _key("new")
    settings.FIELD_ENCRYPTION_KEYS = f"{new},{old}"
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "re-encrypted 1 pending authorization(s)" in out.getvalue()
    settings.FIELD_ENCRYPTION_KEYS = new
    state.refresh_from_db()
    assert crypto.decrypt(state.code_verifier_encrypted, aad=aad) == verifier


@pytest.mark.integration
@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["omit", "same"])
def test_a_refresh_without_rotation_leaves_nothing_under_the_old_key(settings, user, schwab, mode):
    """A provider that keeps its refresh token: the refresh re-seals it under the newest key,
    so dropping the old key after the refresh breaks nothing."""
    from providers.services import token_refresh

    old, new = _key("old"), _key("new")
    settings.FIELD_ENCRYPTION_KEYS = old
    connection_id = connected(schwab, user)
    settings.FIELD_ENCRYPTION_KEYS = f"{new},{old}"
    ProviderToken.objects.update(expires_at=timezone.now())
    schwab.token_script = [mode]

    assert token_refresh(connection_id=connection_id).status == "refreshed"

    token = ProviderToken.objects.get(connection_id=connection_id)
    assert token.key_id == "new"
    assert token.refresh_token_encrypted.startswith("new.") and token.access_token_encrypted.startswith("new.")
    settings.FIELD_ENCRYPTION_KEYS = new  # the old key is dropped
    ProviderToken.objects.update(expires_at=timezone.now())
    schwab.token_script = ["rotate"]
    assert token_refresh(connection_id=connection_id).status == "refreshed"


@pytest.mark.integration
@pytest.mark.django_db
def test_a_row_whose_refresh_token_is_under_an_old_key_is_still_rotated(settings, user, schwab):
    """key_id names the oldest key a row uses, so rotate_encryption_keys does not skip it."""
    from providers.services import _seal

    old, new = _key("old"), _key("new")
    settings.FIELD_ENCRYPTION_KEYS = old
    connected(schwab, user)
    settings.FIELD_ENCRYPTION_KEYS = f"{new},{old}"
    token = ProviderToken.objects.get()
    _seal(token, access="fresh-access", refresh=None)  # keeps the stored refresh token (old key)
    token.save()
    assert token.key_id == "old"

    call_command("rotate_encryption_keys", stdout=io.StringIO())
    token.refresh_from_db()
    assert token.key_id == "new" and token.refresh_token_encrypted.startswith("new.")
