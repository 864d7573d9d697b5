"""AES-256-GCM for values at rest: ``<kid>.<base64url(nonce || ciphertext || tag)>``.

- The key ring is FIELD_ENCRYPTION_KEYS (``kid:base64url(32 bytes)``, newest
  first), parsed by ``dashtam.config.parse_encryption_keys``: keys are never
  derived, padded or truncated. The newest key seals; any key in the ring opens.
- Each value gets a fresh 96-bit random nonce.
- The caller's associated data (the row id and the column) is authenticated but
  not stored, so a ciphertext moved to another row or column fails to open.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from dashtam.config import parse_encryption_keys

NONCE_BYTES = 12


class DecryptionError(Exception):
    """A value could not be opened: unknown key id, malformed, or tampered with.

    The message never contains the value.
    """


@lru_cache(maxsize=8)  # keyed by the setting's value, so a changed ring is parsed afresh
def _ring(value: str) -> tuple[tuple[str, bytes], ...]:
    ring, problems = parse_encryption_keys(value)
    if problems:
        # The system checks refuse to start with a bad ring; this guards scripts and shells.
        raise DecryptionError("FIELD_ENCRYPTION_KEYS is invalid: " + "; ".join(problems))
    return tuple(ring)


def key_ring() -> tuple[tuple[str, bytes], ...]:
    return _ring(settings.FIELD_ENCRYPTION_KEYS or "")


def current_key_id() -> str:
    return key_ring()[0][0]


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encrypt(plaintext: str, *, aad: str) -> str:
    """Seal ``plaintext`` under the newest key, bound to ``aad``."""
    kid, key = key_ring()[0]
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), aad.encode())
    return f"{kid}.{_b64e(nonce + sealed)}"


def key_id_of(token: str) -> str:
    return token.partition(".")[0]


def decrypt(token: str, *, aad: str) -> str:
    """Open a value sealed by ``encrypt`` with the same ``aad``; DecryptionError otherwise."""
    kid, sep, body = (token or "").partition(".")
    if not sep:
        raise DecryptionError("malformed ciphertext")
    keys = dict(key_ring())
    if kid not in keys:
        raise DecryptionError(f"no key with id {kid!r} in FIELD_ENCRYPTION_KEYS")
    try:
        raw = _b64d(body)
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError("malformed ciphertext") from exc
    if len(raw) < NONCE_BYTES + 16:
        raise DecryptionError("malformed ciphertext")
    try:
        return AESGCM(keys[kid]).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode()).decode()
    except (InvalidTag, UnicodeDecodeError) as exc:
        raise DecryptionError("ciphertext failed authentication") from exc



# --- Re-sealers ------------------------------------------------------------------------
# Every app that seals values with this ring registers how to re-seal them under the newest
# key (`rotate_encryption_keys` runs them all), so the command imports no app's internals.
# A re-sealer takes ``stderr=`` (a stream for per-row failures) and returns (re-sealed, failed).
_RESEALERS: dict[str, Callable[..., tuple[int, int]]] = {}


def register_resealer(label: str, reseal: Callable[..., tuple[int, int]]) -> None:
    """Register ``reseal`` under ``label`` (e.g. "TOTP seed"); called from ``AppConfig.ready``."""
    _RESEALERS[label] = reseal


def resealers() -> dict[str, Callable[..., tuple[int, int]]]:
    """The registered re-sealers, by label, in registration order."""
    return dict(_RESEALERS)
