"""Fixtures for the audit tests."""

from __future__ import annotations

import pytest
from django.db import connection

from dashtam import context


@pytest.fixture
def in_request():
    """Run code as if inside a request with a known id (for record() without a view)."""
    token = context.set_context(context.RequestContext(
        request_id="req-under-test", ip="203.0.113.9", user_agent="pytest", method="POST",
        path="/api/v1/test", route="api/v1/test", fingerprint=context.fingerprint("203.0.113.9", "pytest"),
    ))
    try:
        yield context.get()
    finally:
        context.reset(token)


def require_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no triggers; the model-level guard is tested instead")
