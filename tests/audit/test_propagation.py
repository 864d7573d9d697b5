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

from audit import context, propagation
from audit.models import AuditEvent
from audit.services import record
from dashtam.logging import JsonFormatter, RequestContextFilter
from tests.conftest import wait_until
from tests.factories import UserFactory

log = logging.getLogger("tests.audit.probe")


@shared_task(name="tests.audit.probe")
def probe(tag: str) -> None:
    log.warning("probe task ran", extra={"tag": tag})
    with transaction.atomic():
        record(action="admin.action", extra={"action": "probe", "tag": tag})


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
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    finally:
        log.removeHandler(handler)


@pytest.mark.integration
def test_a_task_enqueued_by_a_request_writes_rows_and_logs_with_its_id(celery_worker, client,
                                                                         json_log_lines):
    with override_settings(ROOT_URLCONF=__name__):
        response = client.get("/enqueue/alpha", HTTP_X_REQUEST_ID="origin-req-77")
    assert response.status_code == 200

    row = wait_until(lambda: AuditEvent.objects.filter(extra__action="probe", extra__tag="alpha").first(),
                     timeout=30)
    assert row.request_id == "origin-req-77"
    assert row.actor_email == "alpha@example.com" and row.actor_id is not None
    assert row.session_id == "sess-123"
    assert row.route == "tests.audit.probe"
    in_request = AuditEvent.objects.get(extra__action="probe-request")
    assert in_request.request_id == row.request_id  # staff find both with one search
    line = next(x for x in wait_until(json_log_lines) if x.get("tag") == "alpha")
    assert line["request_id"] == "origin-req-77"


@pytest.mark.integration
def test_tasks_sent_by_beat_get_a_fresh_request_id_each(celery_worker):
    def beat_thread():
        propagation.on_beat_init()
        probe.delay("beat-1")
        probe.delay("beat-2")

    thread = threading.Thread(target=beat_thread)
    thread.start()
    thread.join()
    rows = wait_until(lambda: (lambda r: r if len(r) == 2 else None)(
        list(AuditEvent.objects.filter(extra__action="probe").order_by("id"))), timeout=30)
    ids = {r.request_id for r in rows}
    assert len(ids) == 2
    for request_id in ids:
        assert uuid.UUID(request_id)
    assert all(r.actor_id is None for r in rows)


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
