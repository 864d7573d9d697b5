"""A request's id and actor follow the work it enqueues into Celery (and into the logs)."""

from __future__ import annotations

import io
import json
import logging
import threading
import uuid

import pytest
from celery import shared_task
from django.db import transaction
from django.http import JsonResponse
from django.test import override_settings
from django.urls import path

from audit.models import AuditEvent
from audit.services import record
from dashtam import context
from dashtam import context_celery as propagation
from dashtam.logging import JsonFormatter, RequestContextFilter
from tests.conftest import wait_until
from tests.factories import UserFactory

log = logging.getLogger("tests.audit.probe")


@shared_task(name="tests.audit.probe")
def probe(tag: str) -> None:
    log.warning("probe task ran", extra={"tag": tag})
    with transaction.atomic():
        record(action="admin.action", extra={"action": "probe", "tag": tag})


@shared_task(name="tests.audit.probe_fan_out")
def probe_fan_out(tag: str) -> None:
    """Like a periodic task that fans out work: records, then enqueues one child."""
    with transaction.atomic():
        record(action="admin.action", extra={"action": "fan-out", "tag": tag})
        transaction.on_commit(lambda: probe.delay(tag))


def _enqueue(request, tag):
    user = UserFactory(email=f"{tag}@example.com")
    context.bind_actor(user, "sess-123")
    with transaction.atomic():
        record(action="admin.action", extra={"action": "probe-request", "tag": tag})
        transaction.on_commit(lambda: probe.delay(tag))
    return JsonResponse({"ok": True})


urlpatterns = [path("enqueue/<str:tag>", _enqueue)]


@pytest.fixture
def json_log_lines():
    """The JSON lines our console handler would print for the probe logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    # Celery's test worker sets the root logger to ERROR the first time one starts.
    level = log.level
    log.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


@pytest.mark.integration
def test_a_task_enqueued_by_a_request_writes_rows_and_logs_with_its_id(celery_worker, client,
                                                                         json_log_lines, settings):
    settings.TRUSTED_PROXY_COUNT = 1  # the incoming id is the proxy's
    tag = f"alpha{uuid.uuid4().hex[:8]}"
    request_id = f"origin-{uuid.uuid4()}"
    with override_settings(ROOT_URLCONF=__name__):
        response = client.get(f"/enqueue/{tag}", HTTP_X_REQUEST_ID=request_id)
    assert response.status_code == 200

    row = wait_until(lambda: AuditEvent.objects.filter(extra__action="probe", extra__tag=tag).first(),
                     timeout=60)
    assert row.request_id == request_id
    assert row.actor_email == f"{tag}@example.com" and row.actor_id is not None
    assert row.session_id == "sess-123"
    assert row.route == "tests.audit.probe"
    in_request = AuditEvent.objects.get(extra__action="probe-request")
    assert in_request.request_id == row.request_id  # staff find both with one search
    line = next(x for x in wait_until(json_log_lines) if x.get("tag") == tag)
    assert line["request_id"] == request_id


@pytest.mark.integration
def test_a_task_carries_the_clients_own_request_id_too(celery_worker, client, settings):
    settings.TRUSTED_PROXY_COUNT = 0  # the client's id is not the request id, but it is kept
    tag = f"client{uuid.uuid4().hex[:8]}"
    with override_settings(ROOT_URLCONF=__name__):
        response = client.get(f"/enqueue/{tag}", HTTP_X_REQUEST_ID="client-own-7")
    assert response["X-Client-Request-ID"] == "client-own-7"
    row = wait_until(lambda: AuditEvent.objects.filter(extra__action="probe", extra__tag=tag).first(),
                     timeout=60)
    assert row.request_id == response["X-Request-ID"] != "client-own-7"
    assert row.client_request_id == "client-own-7"


@pytest.mark.integration
def test_tasks_sent_by_beat_get_a_fresh_request_id_each(celery_worker):
    tags = [f"beat-{uuid.uuid4().hex[:8]}" for _ in range(2)]

    def beat_thread():
        propagation.on_beat_init()
        for tag in tags:
            probe.delay(tag)

    thread = threading.Thread(target=beat_thread)
    thread.start()
    thread.join()
    rows = wait_until(lambda: (lambda r: r if len(r) == 2 else None)(
        list(AuditEvent.objects.filter(extra__action="probe", extra__tag__in=tags))), timeout=60)
    ids = {r.request_id for r in rows}
    assert len(ids) == 2
    for request_id in ids:
        assert uuid.UUID(request_id)
    assert all(r.actor_id is None for r in rows)


@pytest.mark.integration
def test_work_fanned_out_by_a_beat_task_shares_that_tasks_id(celery_worker):
    tag = f"fan-{uuid.uuid4().hex[:8]}"

    def beat_thread():
        propagation.on_beat_init()
        probe_fan_out.delay(tag)

    thread = threading.Thread(target=beat_thread)
    thread.start()
    thread.join()
    child = wait_until(lambda: AuditEvent.objects.filter(extra__action="probe", extra__tag=tag).first(),
                       timeout=60)
    parent = AuditEvent.objects.get(extra__action="fan-out", extra__tag=tag)
    assert child.request_id == parent.request_id and uuid.UUID(parent.request_id)


@pytest.mark.django_db
def test_an_eager_task_runs_under_the_callers_request_id(in_request):
    probe.apply(args=("eager",))
    row = AuditEvent.objects.get(extra__tag="eager")
    assert row.request_id == "req-under-test" and row.route == "tests.audit.probe"
    assert context.get().request_id == "req-under-test"  # the caller's context is back


@pytest.mark.django_db
def test_a_task_with_no_request_gets_its_own_id():
    probe.apply(args=("lonely",))
    row = AuditEvent.objects.get(extra__tag="lonely")
    assert uuid.UUID(row.request_id)
    assert context.get() is None


@pytest.mark.django_db
def test_a_task_whose_user_was_deleted_still_records_with_the_email_snapshot():
    token = context.set_context(context.RequestContext(
        request_id="req-gone", user_id="00000000-0000-4000-8000-000000000000", user_email="gone@example.com",
        origin="task",
    ))
    try:
        with transaction.atomic():
            event = record(action="admin.action", extra={"action": "probe"})
    finally:
        context.reset(token)
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.actor_id is None and event.actor_email == "gone@example.com"
