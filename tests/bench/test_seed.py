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
@pytest.mark.slow
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


def test_seeded_provider_connections_refresh_against_the_fake_without_losing_a_token(db, settings):
    from django.utils import timezone

    from bench.schwab import SchwabServer
    from providers import services

    fake = SchwabServer(latency=0.0)
    settings.SCHWAB_CLIENT_ID = "bench-client"
    settings.SCHWAB_CLIENT_SECRET = "bench-secret"
    settings.SCHWAB_REDIRECT_URI = "https://app.example.com/oauth/schwab/callback"
    settings.SCHWAB_API_BASE_URL = fake.base_url
    settings.SCHWAB_RATE_LIMIT = "100000/m"
    try:
        users = seed.users_ensure(count=2)
        ids = seed.provider_connections_reset(count=3, users=users, ledger=fake.ledger,
                                              expires_at=timezone.now())
        before = seed.provider_refresh_tokens()
        assert fake.ledger.lost(before) == []  # what was seeded is what the ledger knows
        results = [services.token_refresh(connection_id=cid) for cid in ids]
        assert [r.status for r in results] == ["refreshed"] * 3
        # A second pass finds nothing due: no connection is refreshed twice.
        assert {services.token_refresh(connection_id=cid).status for cid in ids} == {"not_due"}
        assert fake.ledger.refreshes == 3
        assert fake.ledger.double_refreshes == 0
        assert fake.ledger.lost(seed.provider_refresh_tokens()) == []
    finally:
        fake.stop()
