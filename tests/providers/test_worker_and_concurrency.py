"""The scheduled refresh through a real Celery worker, and exactly-once refresh under concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.db import connections
from django.utils import timezone

from audit.models import AuditEvent
from providers.models import ConnectionStatus, FinancialAccount, ProviderConnection, ProviderToken
from tests.conftest import wait_until
from tests.factories import UserFactory
from tests.providers.conftest import client_for, connect


@pytest.mark.django_db(transaction=True)
def test_whole_flow_with_a_real_worker(schwab, celery_worker, smtp_sink):
    from providers.tasks import refresh_due_tokens

    user = UserFactory()
    client = client_for(user)
    connection_id = connect(client, schwab)
    # The sync was enqueued on commit and ran on the worker.
    wait_until(lambda: FinancialAccount.objects.filter(connection_id=connection_id).exists())
    wait_until(lambda: ProviderConnection.objects.get(pk=connection_id).last_sync_at)

    # The beat task finds the token about to expire and the worker refreshes it once.
    ProviderToken.objects.update(expires_at=timezone.now() + timedelta(minutes=2))
    refresh_due_tokens.delay()
    wait_until(lambda: ProviderToken.objects.get(connection_id=connection_id).refresh_count == 1)
    event = wait_until(lambda: AuditEvent.objects.filter(action="provider.token.refreshed",
                                                         target_id=connection_id).first())
    assert event.extra["rotation"] == "rotated"

    # The provider stops accepting the refresh token: reauth_required and an email.
    schwab.token_script = ["invalid_grant"]
    ProviderToken.objects.update(expires_at=timezone.now())
    refresh_due_tokens.delay()
    wait_until(lambda: ProviderConnection.objects.get(pk=connection_id).status == ConnectionStatus.REAUTH_REQUIRED)
    message = smtp_sink.wait_for(1, to=user.email)[0]
    assert f"/connections/{connection_id}" in smtp_sink.text(message)

    # Disconnect: tokens and data gone, audit kept.
    assert client.delete(f"/api/v1/providers/{connection_id}").status_code == 204
    assert not ProviderToken.objects.exists() and not FinancialAccount.objects.exists()
    assert AuditEvent.objects.filter(target_id=connection_id).count() >= 4


@pytest.mark.django_db(transaction=True)
def test_a_transient_failure_is_retried_by_the_worker_with_backoff(schwab, celery_worker, settings):
    from providers.tasks import refresh_connection_token

    settings.PROVIDER_REFRESH_RETRY_SECONDS = 0.2
    connection_id = connect(client_for(UserFactory()), schwab)
    # Let the first sync (enqueued on connect) finish, so only the task under test refreshes.
    wait_until(lambda: ProviderConnection.objects.get(pk=connection_id).last_sync_at)
    ProviderToken.objects.update(expires_at=timezone.now())
    schwab.token_script = ["500", "rotate"]
    refresh_connection_token.delay(connection_id)
    wait_until(lambda: ProviderToken.objects.get(connection_id=connection_id).refresh_count == 1)
    assert schwab.refresh_calls() == 2
    connection = ProviderConnection.objects.get(pk=connection_id)
    assert connection.status == ConnectionStatus.ACTIVE and connection.consecutive_failures == 0
    assert AuditEvent.objects.filter(action="provider.token.refresh_failed", target_id=connection_id).count() == 1


@pytest.mark.django_db
def test_a_redelivered_refresh_task_does_not_refresh_twice(schwab):
    from providers.tasks import refresh_connection_token

    connection_id = connect(client_for(UserFactory()), schwab)
    ProviderToken.objects.update(expires_at=timezone.now())
    assert refresh_connection_token.delay(connection_id).get() == "refreshed"
    # The same message delivered again (a worker died before acknowledging it).
    assert refresh_connection_token.delay(connection_id).get() == "not_due"
    assert schwab.refresh_calls() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_call_the_provider_exactly_once(schwab):
    if db_connection.vendor != "postgresql":
        pytest.skip("row locks with SKIP LOCKED need PostgreSQL; SQLite serialises writers instead")
    from providers.services import token_refresh

    connection_id = connect(client_for(UserFactory()), schwab)
    ProviderToken.objects.update(expires_at=timezone.now() + timedelta(seconds=30))
    schwab.slow_seconds = 0.5
    schwab.token_script = ["slow"]
    barrier = threading.Barrier(6)
    results = []

    def worker():
        try:
            barrier.wait()
            results.append(token_refresh(connection_id=connection_id).status)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert schwab.refresh_calls() == 1
    assert results.count("refreshed") == 1
    assert set(results) <= {"refreshed", "in_progress", "not_due"}
    token = ProviderToken.objects.get(connection_id=connection_id)
    assert token.refresh_count == 1
    assert AuditEvent.objects.filter(action="provider.token.refreshed", target_id=connection_id).count() == 1


# --- The fan-out's batch task ------------------------------------------------------------
def _due_connections(schwab, count):
    user = UserFactory()
    client = client_for(user)
    ids = [connect(client, schwab, alias=f"Batch {n}") for n in range(count)]
    ProviderToken.objects.update(expires_at=timezone.now() + timedelta(seconds=30))
    return ids


@pytest.mark.django_db
def test_a_batch_refreshes_each_connection_once_and_a_redelivery_refreshes_nothing(schwab):
    from providers import refresh_queue, tasks

    ids = _due_connections(schwab, 3)
    calls_before = schwab.refresh_calls()
    assert refresh_queue.claim_many(ids) == ids  # as the fan-out claims them
    assert tasks.refresh_connection_tokens.delay(ids).get() == {"refreshed": 3}
    assert schwab.refresh_calls() == calls_before + 3
    for connection_id in ids:
        token = ProviderToken.objects.get(connection_id=connection_id)
        assert token.refresh_count == 1
        assert AuditEvent.objects.filter(action="provider.token.refreshed", target_id=connection_id).count() == 1
    # The claims went with the refreshes: the next tick may enqueue them again when due.
    assert refresh_queue.claim_many(ids) == ids
    # The same message delivered again (a worker died before acknowledging it).
    assert tasks.refresh_connection_tokens.delay(ids).get() == {"not_due": 3}
    assert schwab.refresh_calls() == calls_before + 3


@pytest.mark.django_db
def test_a_transient_failure_in_a_batch_is_retried_on_its_own(schwab, settings):
    from unittest import mock

    from providers import refresh_queue, tasks

    settings.PROVIDER_REFRESH_RETRY_SECONDS = 10
    ids = _due_connections(schwab, 3)
    schwab.token_script = ["rotate", "500", "rotate"]
    refresh_queue.claim_many(ids)
    with mock.patch.object(tasks.refresh_connection_token, "apply_async") as retry:
        # run() as the worker would (not eager), so the retry is scheduled, not run in line.
        assert tasks.refresh_connection_tokens.run(ids) == {"refreshed": 2, "failed": 1}
    assert retry.call_count == 1
    assert retry.call_args.args[0] == (ids[1],)
    assert retry.call_args.kwargs["retries"] == 1  # the single task continues the backoff
    assert 10 <= retry.call_args.kwargs["countdown"] <= 15
    connection = ProviderConnection.objects.get(pk=ids[1])
    assert connection.consecutive_failures == 1 and connection.status == ConnectionStatus.ACTIVE
    # The failed connection stays claimed until its retry ends; the others are released.
    assert refresh_queue.claim_many(ids) == [ids[0], ids[2]]


@pytest.mark.django_db
def test_one_connection_that_crashes_does_not_stop_the_batch(schwab):
    from unittest import mock

    from providers import services, tasks

    ids = _due_connections(schwab, 3)
    real = services.token_refresh

    def flaky(*, connection_id, **kwargs):
        if connection_id == ids[0]:
            raise RuntimeError("boom")
        return real(connection_id=connection_id, **kwargs)

    with mock.patch.object(services, "token_refresh", side_effect=flaky):
        assert tasks.refresh_connection_tokens.run(ids) == {"crashed": 1, "refreshed": 2}
    assert [ProviderToken.objects.get(connection_id=c).refresh_count for c in ids] == [0, 1, 1]


@pytest.mark.django_db(transaction=True)
def test_two_workers_on_the_same_batch_refresh_each_connection_exactly_once(schwab):
    if db_connection.vendor != "postgresql":
        pytest.skip("row locks with SKIP LOCKED need PostgreSQL; SQLite serialises writers instead")
    from providers import tasks

    ids = _due_connections(schwab, 4)
    calls_before = schwab.refresh_calls()
    schwab.slow_seconds = 0.2
    schwab.token_script = ["slow"] * 8
    barrier = threading.Barrier(2)
    results = []

    def worker(order):
        try:
            barrier.wait()
            results.append(tasks.refresh_connection_tokens.run(order))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(o,)) for o in (ids, ids[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert schwab.refresh_calls() == calls_before + 4
    assert sum(r.get("refreshed", 0) for r in results) == 4
    for connection_id in ids:
        assert ProviderToken.objects.get(connection_id=connection_id).refresh_count == 1
        assert AuditEvent.objects.filter(action="provider.token.refreshed", target_id=connection_id).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_transient_failure_in_a_batch_is_retried_by_the_worker(schwab, celery_worker, settings):
    from providers.tasks import refresh_due_tokens

    settings.PROVIDER_REFRESH_RETRY_SECONDS = 0.2
    connection_id = connect(client_for(UserFactory()), schwab)
    wait_until(lambda: ProviderConnection.objects.get(pk=connection_id).last_sync_at)
    ProviderToken.objects.update(expires_at=timezone.now())
    schwab.token_script = ["500", "rotate"]
    refresh_due_tokens.delay()
    wait_until(lambda: ProviderToken.objects.get(connection_id=connection_id).refresh_count == 1)
    assert schwab.refresh_calls() == 2
    connection = ProviderConnection.objects.get(pk=connection_id)
    assert connection.status == ConnectionStatus.ACTIVE and connection.consecutive_failures == 0
    assert AuditEvent.objects.filter(action="provider.token.refresh_failed", target_id=connection_id).count() == 1
    assert AuditEvent.objects.filter(action="provider.token.refreshed", target_id=connection_id).count() == 1
