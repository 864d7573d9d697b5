"""Writes for the providers app."""


def connections_revoke_for_user(*, user, reason: str) -> int:
    """Revoke every provider connection of ``user`` (account deactivation)."""
    return 0


def provider_tokens_rotate_for_user(*, user, reason: str) -> int:
    """Breach rotation for ``user``'s provider tokens (after a password reset)."""
    return 0
