"""Sealed provider secrets: the associated data they are bound to, sealing and opening a
connection's tokens, and re-sealing a row under the newest key (``rotate_encryption_keys``).

Token plaintext exists only in local variables: it is sealed by ``dashtam.crypto``
before it touches a model, and no message, exception, log line or audit ``extra`` ever
carries it.
"""

from __future__ import annotations

from django.db import transaction

from dashtam import crypto
from providers.models import OAuthState, ProviderToken

# Written out, not taken from ``_meta``: the name is part of every stored ciphertext, so a
# renamed model must not change it.
_AAD_NAMES = {ProviderToken: "providers.ProviderToken", OAuthState: "providers.OAuthState"}


def column_aad(row: ProviderToken | OAuthState, column: str) -> str:
    """The associated data that binds a sealed provider value to its row and its column:
    ``providers.ProviderToken:<id>:access`` and ``...:refresh``, ``providers.OAuthState:<id>:verifier``.

    It is authenticated, not stored: a ciphertext copied to another row or column fails to
    open. Every seal and open of a provider value (and the key rotation) uses this one function.
    """
    return f"{_AAD_NAMES[row._meta.concrete_model]}:{row.pk}:{column}"


def token_access_plaintext(*, token: ProviderToken) -> str:
    """The access token in clear, for one outbound call. Raises crypto.DecryptionError."""
    return crypto.decrypt(token.access_token_encrypted, aad=column_aad(token, "access"))


def _refresh_plaintext(token: ProviderToken) -> str:
    if not token.refresh_token_encrypted:
        return ""
    return crypto.decrypt(token.refresh_token_encrypted, aad=column_aad(token, "refresh"))


def _seal(token: ProviderToken, *, access: str, refresh: str | None) -> None:
    """Encrypt the tokens under the newest key. ``refresh=None`` keeps the stored refresh
    token as it is; ``key_id`` then names its key while that is an older one, so that
    ``rotate_encryption_keys`` still re-encrypts the row before the old key is dropped."""
    token.access_token_encrypted = crypto.encrypt(access, aad=column_aad(token, "access"))
    if refresh is not None:
        token.refresh_token_encrypted = crypto.encrypt(refresh, aad=column_aad(token, "refresh")) if refresh else ""
    current = crypto.current_key_id()
    kept = crypto.key_id_of(token.refresh_token_encrypted) if token.refresh_token_encrypted else current
    token.key_id = kept or current


def token_reencrypt(*, token_id) -> bool:
    """Re-seal one token row under the newest key. Row-locked; idempotent (False when it
    already uses the newest key). Raises crypto.DecryptionError when it cannot be opened."""
    with transaction.atomic():
        token = ProviderToken.objects.select_for_update().filter(pk=token_id).first()
        if token is None or token.key_id == crypto.current_key_id():
            return False
        access = token_access_plaintext(token=token)
        refresh = _refresh_plaintext(token)
        _seal(token, access=access, refresh=refresh)
        token.save(update_fields=["access_token_encrypted", "refresh_token_encrypted", "key_id", "updated_at"])
        return True


def oauth_state_reencrypt(*, state_id) -> bool:
    """Re-seal the PKCE verifier of one authorization still in flight under the newest key.

    Row-locked; False when the state was used meanwhile or its verifier cannot be opened
    (that authorization then fails as it would have anyway).
    """
    with transaction.atomic():
        state = OAuthState.objects.select_for_update().filter(pk=state_id, used_at__isnull=True).first()
        if state is None:
            return False
        aad = column_aad(state, "verifier")
        try:
            plain = crypto.decrypt(state.code_verifier_encrypted, aad=aad)
        except crypto.DecryptionError:
            return False
        state.code_verifier_encrypted = crypto.encrypt(plain, aad=aad)
        state.save(update_fields=["code_verifier_encrypted"])
        return True
