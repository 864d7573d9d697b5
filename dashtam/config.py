"""Small pure helpers the settings module needs (no Django imports here)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

KEY_ENTRY = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def browser_url(url: str) -> str:
    """The development server's URL as a browser should open it: a loopback IP becomes
    "localhost", the one host name a WebAuthn relying party (passkeys) accepts locally, so the
    account pages, the links in emails and passkeys all share one origin."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "::1"):
        return url
    return f"{parts.scheme}://localhost{f':{parts.port}' if parts.port else ''}{parts.path}"


def derive_jwt_key(secret_key: str) -> str:
    """Development/test only: a JWT key distinct from SECRET_KEY, derived from it."""
    return hmac.new(secret_key.encode(), b"dashtam-jwt-signing-key", hashlib.sha256).hexdigest()


def parse_encryption_keys(value: str) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Parse FIELD_ENCRYPTION_KEYS (``kid:base64url(32 bytes)``, newest first).

    Returns the ring and a list of problems. Keys are never padded, truncated or
    derived: a key that is not exactly 32 bytes is an error.
    """
    ring: list[tuple[str, bytes]] = []
    problems: list[str] = []
    if not value.strip():
        return ring, ["FIELD_ENCRYPTION_KEYS is empty"]
    seen: set[str] = set()
    for position, entry in enumerate(value.split(","), start=1):
        entry = entry.strip()
        kid, sep, encoded = entry.partition(":")
        if not sep or not KEY_ENTRY.match(kid):
            problems.append(f"entry {position} is not 'kid:base64url(32 bytes)'")
            continue
        if kid in seen:
            problems.append(f"key id {kid!r} appears twice")
            continue
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            problems.append(f"key {kid!r} is not valid base64url")
            continue
        if len(raw) != 32:
            problems.append(f"key {kid!r} is {len(raw)} bytes; AES-256-GCM needs exactly 32")
            continue
        seen.add(kid)
        ring.append((kid, raw))
    return ring, problems
