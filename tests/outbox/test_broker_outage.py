"""A dead broker never turns committed work into a 500, and the work still runs, once.

A real broker (a private redis-server) is stopped while requests commit work
that enqueues tasks, then started again; a real worker consumes from it.
"""

from __future__ import annotations

import pytest
from django.db import transaction

from audit.models import AuditEvent
from dashtam.outbox.models import OutboxTask
from dashtam.outbox.services import outbox_sweep
from dashtam.outbox.tasks import sweep_outbox
from tests.conftest import PASSWORD, wait_until
from tests.factories import UserFactory
from tests.providers.conftest import client_for, connect, schwab  # noqa: F401 - the Schwab peer fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


def _sent_to(smtp_sink, address: str) -> int:
    return len([m for m in smtp_sink.messages if address in m["To"]])


@pytest.mark.slow
def test_work_committed_while_the_broker_is_down_answers_normally_and_runs_once_when_it_is_back(
    own_broker, celery_worker, smtp_sink, schwab, settings,  # noqa: F811
):
    settings.OUTBOX_SWEEP_INTERVAL = 1  # a failed sweep's row is due again a second later
    user = UserFactory(password=PASSWORD)
    provider_user = UserFactory(password=PASSWORD)
    client = client_for(provider_user)
    from rest_framework.test import APIClient

    public = APIClient()
    own_broker.kill()

    # A reset lookup (accounts), a verification email (mail), a provider connect (its first sync).
    reset = public.post("/api/v1/auth/request-password-reset", {"email": user.email}, format="json")
    assert reset.status_code == 202, reset.content
    register = public.post("/api/v1/auth/register", {"email": "newcomer@example.com", "password": PASSWORD},
                           format="json")
    assert register.status_code == 202, register.content
    connection_id = connect(client, schwab)

    names = sorted(OutboxTask.objects.values_list("task_name", flat=True))
    assert names == ["accounts.tasks.password_reset_request_for", "dashtam.tasks.send_email",
                     "providers.tasks.sync_connection"]
    # Nothing ran: the broker never had these tasks.
    assert not AuditEvent.objects.filter(action="auth.password.reset_requested").exists()

    # The sweeper cannot publish while the broker is still down: every task stays.
    assert outbox_sweep() == 0
    assert OutboxTask.objects.count() == 3

    own_broker.start()
    wait_until(lambda: not OutboxTask.objects.filter(next_attempt_at__gt=_now()).exists(), timeout=10)
    sweep_outbox.delay()  # what beat sends every OUTBOX_SWEEP_INTERVAL; the worker runs it
    wait_until(lambda: not OutboxTask.objects.exists(), timeout=30)

    smtp_sink.wait_for(1, to=user.email, timeout=30)
    smtp_sink.wait_for(1, to="newcomer@example.com", timeout=30)
    wait_until(lambda: AuditEvent.objects.filter(action="provider.sync.completed", target_id=connection_id).exists(),
               timeout=30)
    # The reset's task kept the request that caused it.
    requested = AuditEvent.objects.get(action="auth.password.reset_requested")
    assert requested.request_id == reset["X-Request-ID"]

    # Once: a second sweep has nothing left, and a marker task sent after everything has run.
    assert outbox_sweep() == 0
    with transaction.atomic():
        from dashtam.mail import send_templated_email

        send_templated_email(to="marker@example.com", template="account_password_changed",
                             context={"first_name": "M"})
    smtp_sink.wait_for(1, to="marker@example.com", timeout=30)
    assert _sent_to(smtp_sink, user.email) == 1
    assert _sent_to(smtp_sink, "newcomer@example.com") == 1
    assert AuditEvent.objects.filter(action="provider.sync.completed", target_id=connection_id).count() == 1


def _now():
    from django.utils import timezone

    return timezone.now()


def _queued(broker) -> int:
    import redis

    return redis.Redis.from_url(broker.url).llen("celery")


def test_a_row_another_sweeper_holds_is_skipped_and_every_row_is_published_once(own_broker):
    from django.db import connection, connections

    from dashtam.outbox.services import outbox_record

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite serialises the sweepers' transactions instead")
    rows = [outbox_record(task_name="dashtam.tasks.send_email", args=[],
                          kwargs={"to": f"n{i}@example.com", "template": "x", "context": {}}, headers={})
            for i in range(3)]
    other = connections.create_connection("default")  # a second sweeper, mid-batch on the first row
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {OutboxTask._meta.db_table} WHERE id = %s FOR UPDATE",
                           [rows[0].pk])
        assert outbox_sweep() == 2
        assert _queued(own_broker) == 2
        assert list(OutboxTask.objects.values_list("pk", flat=True)) == [rows[0].pk]
        other.rollback()
    finally:
        other.close()
    assert outbox_sweep() == 1
    assert outbox_sweep() == 0
    assert _queued(own_broker) == 3 and not OutboxTask.objects.exists()


@pytest.mark.slow
def test_while_the_broker_is_known_down_a_task_is_recorded_with_the_work_and_rolls_back_with_it(own_broker):
    from dashtam.celery import app
    from dashtam.outbox.services import broker_known_down, enqueue
    from dashtam.tasks import send_email

    app.conf.task_always_eager = False
    try:
        own_broker.kill()
        enqueue(send_email, to="first@example.com", template="x", context={})  # the broker refuses it
        assert broker_known_down()
        assert OutboxTask.objects.count() == 1

        with pytest.raises(RuntimeError), transaction.atomic():
            enqueue(send_email, to="rolled-back@example.com", template="x", context={})
            assert OutboxTask.objects.count() == 2  # written in the work's own transaction
            raise RuntimeError("the work fails")
        assert OutboxTask.objects.count() == 1  # and gone with it
    finally:
        app.conf.task_always_eager = True
