"""Concurrent refreshes with one token: the row lock lets exactly one through (PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from sessions_mgmt.models import Session

REFRESH = "/api/v1/auth/refresh"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs real row locks: SQLite ignores select_for_update and serialises whole-database writes",
    ),
]


@pytest.mark.slow
def test_twenty_concurrent_refreshes_with_one_token_give_exactly_one_success(user, start_session):
    from rest_framework.test import APIClient

    issued = start_session(user)
    barrier = threading.Barrier(20)
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def worker():
        try:
            client = APIClient()
            barrier.wait(timeout=30)
            response = client.post(REFRESH, {"refresh": issued.refresh}, format="json")
            code = response.json().get("code") if response.status_code != 200 else None
            with lock:
                results.append((response.status_code, code))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert len(results) == 20
    successes = [r for r in results if r[0] == 200]
    assert len(successes) == 1
    # Every loser presented a token that had just been rotated: with no grace period
    # that is reuse, or it found the session already ended by an earlier loser.
    assert {code for status, code in results if status != 200} <= {"TOKEN_REUSED", "SESSION_REVOKED"}
    assert all(status == 401 for status, _ in results if status != 200)
    session = Session.objects.get(pk=issued.session.pk)
    assert session.previous_refresh_jti == issued.session.refresh_jti
