"""Passkey reads."""

from __future__ import annotations

from accounts.passkeys.models import Passkey


def passkeys_of(*, user) -> list[Passkey]:
    """The user's passkeys, oldest first (one query)."""
    return list(Passkey.objects.filter(user_id=user.pk).order_by("created_at", "pk"))


def passkey_count(*, user) -> int:
    return Passkey.objects.filter(user_id=user.pk).count()
