"""The benchmark's seeding writes rows the application accepts as its own."""

from __future__ import annotations

import pytest
from django.db import connection

from bench import seed


def test_seeded_users_log_in_with_the_bench_password(db):
    users = seed.users_ensure(count=3)
    assert len({u.pk for u in users}) == 3
    assert all(u.check_password(seed.PASSWORD) and u.is_verified for u in users)
    # Idempotent: the second call reuses the same rows.
    assert [u.pk for u in seed.users_ensure(count=3)] == [u.pk for u in users]


def test_seeded_sessions_carry_working_tokens(db, api_client):
    users = seed.users_ensure(count=2)
    pairs = seed.sessions_start(users=users, count=3)
    access, refresh = pairs[2]
    response = api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {access}")
    assert response.status_code == 200
    assert response.json()["email"] == users[0].email
    rotated = api_client.post("/api/v1/auth/refresh", {"refresh": refresh}, format="json")
    assert rotated.status_code == 200


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
def test_audit_rows_are_copied_in_sealed_into_the_hash_chain(db, django_capture_on_commit_callbacks):
    from audit.models import AuditEvent
    from audit.services import audit_chain_verify

    users = seed.users_ensure(count=5)
    found = seed.audit_seed(rows=500, users=users, log=lambda message: None)
    assert found["rows"] >= 500
    assert AuditEvent.objects.filter(request_id=found["request_id"]).exists()
    assert not AuditEvent.objects.filter(seq__isnull=True).exists()
    report = audit_chain_verify()
    assert report.ok, str(report)
    assert report.checked >= 500
