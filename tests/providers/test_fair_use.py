"""Fair use of a provider's shared outbound budget (issue 13 §6): per-user limits on forced
refreshes and syncs, fresh tokens answered from the stored state, a share of the budget kept
for the scheduled refresh, and manual syncs that reuse the job already queued or just run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from providers.models import ProviderConnection, ProviderToken
from tests.factories import UserFactory
from tests.providers.conftest import client_for, connect

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def _age(connection_id, *, hours: int = 1) -> None:
    """The token was obtained ``hours`` ago (no longer fresh for a forced refresh)."""
    ProviderConnection.objects.filter(pk=connection_id).update(
        last_refreshed_at=timezone.now() - timedelta(hours=hours))


def test_a_forced_refresh_of_a_fresh_token_answers_from_the_stored_state(auth_client, schwab):
    connection_id = connect(auth_client, schwab)
    stored = ProviderToken.objects.get(connection_id=connection_id)
    calls = len(schwab.token_calls)

    response = auth_client.post(f"/api/v1/providers/{connection_id}/token-refresh")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["refreshed"] is False and body["rotation"] == "same_token_returned" and body["status"] == "active"
    assert body["expires_at"] == stored.expires_at.isoformat().replace("+00:00", "Z")
    assert len(schwab.token_calls) == calls  # the provider was not called
    token = ProviderToken.objects.get(connection_id=connection_id)
    assert token.refresh_count == 0 and token.access_token_encrypted == stored.access_token_encrypted
    assert not AuditEvent.objects.filter(action="provider.token.refreshed").exists()

    # Once it is older than PROVIDER_TOKEN_FRESH_SECONDS, a forced refresh does call the provider.
    _age(connection_id)
    refreshed = auth_client.post(f"/api/v1/providers/{connection_id}/token-refresh")
    assert refreshed.status_code == 200
    assert refreshed.json()["refreshed"] is True and refreshed.json()["rotation"] == "rotated"
    assert schwab.refresh_calls() == 1


@pytest.mark.slow
def test_forced_refreshes_have_a_per_user_budget(auth_client, schwab):
    connection_id = connect(auth_client, schwab)
    statuses = [auth_client.post(f"/api/v1/providers/{connection_id}/token-refresh").status_code
                for _ in range(10)]
    assert statuses == [200] * 10
    over = auth_client.post(f"/api/v1/providers/{connection_id}/token-refresh")
    assert over.status_code == 429
    assert over["Content-Type"] == "application/problem+json" and over.json()["code"] == "RATE_LIMITED"
    assert int(over["Retry-After"]) > 60  # an hourly budget
    # Per user: someone else's budget is untouched, and so are the user's other calls.
    other = client_for(UserFactory())
    other_id = connect(other, schwab, alias="Other")
    assert other.post(f"/api/v1/providers/{other_id}/token-refresh").status_code == 200
    assert auth_client.get(f"/api/v1/providers/{connection_id}").status_code == 200


def test_manual_syncs_have_a_per_user_budget(auth_client, schwab, settings):
    settings.PROVIDER_SYNC_COOLDOWN_SECONDS = 0
    connection_id = connect(auth_client, schwab)
    statuses = [auth_client.post(f"/api/v1/providers/{connection_id}/sync").status_code for _ in range(10)]
    assert statuses == [202] * 10
    over = auth_client.post(f"/api/v1/providers/{connection_id}/sync")
    assert over.status_code == 429 and over.json()["code"] == "RATE_LIMITED" and "Retry-After" in over


@pytest.mark.slow
def test_the_scheduled_refresh_keeps_its_reserved_share_of_the_budget(auth_client, schwab, settings):
    from providers.tasks import refresh_connection_tokens

    busy = connect(auth_client, schwab, alias="Busy")
    scheduled = connect(client_for(UserFactory()), schwab, alias="Scheduled")
    # A budget of 4 a minute, half of it kept for the scheduled refresh.
    settings.SCHWAB_RATE_LIMIT = "4/m"
    settings.PROVIDER_REFRESH_RESERVED_SHARE = 0.5
    calls = schwab.refresh_calls()

    answers = []
    for _ in range(3):
        _age(busy)
        answers.append(auth_client.post(f"/api/v1/providers/{busy}/token-refresh"))
    assert [a.status_code for a in answers] == [200, 200, 503]
    assert answers[2].json()["code"] == "PROVIDER_UNAVAILABLE" and int(answers[2]["Retry-After"]) >= 1
    assert schwab.refresh_calls() == calls + 2  # the refused call never reached the provider

    # The users' share is spent, yet the scheduled refresh still gets through.
    ProviderToken.objects.filter(connection_id=scheduled).update(expires_at=timezone.now() + timedelta(seconds=30))
    assert refresh_connection_tokens.delay([scheduled]).get() == {"refreshed": 1}
    assert schwab.refresh_calls() == calls + 3
    assert ProviderToken.objects.get(connection_id=scheduled).refresh_count == 1


def test_a_manual_sync_reuses_the_job_queued_or_just_run(auth_client, schwab, settings,
                                                         django_capture_on_commit_callbacks):
    from providers.tasks import sync_connection

    settings.PROVIDER_SYNC_COOLDOWN_SECONDS = 300
    with django_capture_on_commit_callbacks() as first_sync:
        connection_id = connect(auth_client, schwab)
    assert len(first_sync) == 1  # connecting queued the first sync job
    job = str(ProviderConnection.objects.get(pk=connection_id).sync_job_id)

    # While it is queued, asking again answers with it and queues nothing.
    with django_capture_on_commit_callbacks() as queued:
        answers = [auth_client.post(f"/api/v1/providers/{connection_id}/sync") for _ in range(5)]
    assert queued == []
    assert {a.status_code for a in answers} == {202}
    assert {(a.json()["job_id"], a.json()["status"], a.json()["created"]) for a in answers} == {
        (job, "queued", False)}

    # It runs; shortly afterwards, asking again answers with the job that just completed.
    assert sync_connection.delay(connection_id, job_id=job).get() == "synced"
    with django_capture_on_commit_callbacks() as recent:
        answer = auth_client.post(f"/api/v1/providers/{connection_id}/sync")
    assert recent == []
    assert answer.status_code == 202
    assert (answer.json()["job_id"], answer.json()["status"], answer.json()["created"]) == (job, "completed", False)
    assert answer.json()["last_sync_at"] is not None

    # Later, a new job is queued, once.
    ProviderConnection.objects.filter(pk=connection_id).update(last_sync_at=timezone.now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks() as fresh:
        answers = [auth_client.post(f"/api/v1/providers/{connection_id}/sync") for _ in range(3)]
    assert len(fresh) == 1
    new_job = answers[0].json()["job_id"]
    assert new_job != job and answers[0].json()["created"] is True and answers[0].json()["status"] == "queued"
    assert [a.json()["job_id"] for a in answers] == [new_job] * 3
    assert [a.json()["created"] for a in answers] == [True, False, False]
    assert AuditEvent.objects.filter(action="provider.sync.requested", target_id=connection_id).count() == 1


def test_the_beat_does_not_queue_a_sync_for_a_connection_with_a_job_queued(
        auth_client, schwab, django_capture_on_commit_callbacks):
    from providers.tasks import sync_due_connections

    connection_id = connect(auth_client, schwab)  # its first sync job is queued (not run here)
    with django_capture_on_commit_callbacks() as enqueued:
        assert sync_due_connections.delay().get() == 0
    assert enqueued == []
    # Once the job is over (or lost for longer than PROVIDER_SYNC_QUEUED_SECONDS), the beat queues one.
    ProviderConnection.objects.filter(pk=connection_id).update(sync_requested_at=None)
    with django_capture_on_commit_callbacks() as enqueued:
        assert sync_due_connections.delay().get() == 1
        assert sync_due_connections.delay().get() == 0  # an overlapping run finds it queued
    assert len(enqueued) == 1
