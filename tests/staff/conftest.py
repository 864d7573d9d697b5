"""Fixtures for the staff-permission tests: a world with something for every admin action to break."""

from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _plain_counts(settings):
    """These tests lock an account on purpose: the request rate limits have their own tests."""
    settings.RATELIMIT_ENABLE = False


@pytest.fixture(autouse=True)
def _fresh_revocation_cache():
    """A token version cached by an earlier test's database must not decide this one's tokens."""
    from sessions_mgmt import revocation

    def forget():
        revocation.reset_process_state()
        if hasattr(cache, "delete_pattern"):
            cache.delete_pattern("sessions:*")
        else:
            cache.clear()

    forget()
    yield
    forget()
