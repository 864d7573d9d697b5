"""Tracing: one request and the task it enqueued arrive at an OTLP collector under one trace id.

The collector is an HTTP server in this test process that receives OTLP/HTTP
protobuf (``POST /v1/traces``) and decodes it with opentelemetry-proto, as a real
collector would. The task runs on a real Celery worker (a thread consuming from
the configured broker), so the trace context must travel in the task message.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery import shared_task
from celery.signals import task_postrun
from django.db import connection, connections, transaction
from django.http import JsonResponse
from django.test import override_settings
from django.urls import path
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from audit.services import record
from dashtam.logging import JsonFormatter, RequestContextFilter
from dashtam.observability import tracing
from tests.conftest import wait_until

log = logging.getLogger("tests.observability.probe")


@shared_task(name="tests.observability.traced_probe")
def traced_probe(tag: str) -> None:
    log.warning("traced probe ran", extra={"tag": tag})


def _enqueue(request, tag):
    log.warning("enqueueing", extra={"tag": tag})
    with transaction.atomic():
        record(action="admin.action", extra={"action": "traced", "tag": tag})
        transaction.on_commit(lambda: traced_probe.delay(tag))
    return JsonResponse({"ok": True})


urlpatterns = [path("traced/<str:tag>", _enqueue)]


class Collector:
    """Receives OTLP/HTTP protobuf trace exports and keeps every span, decoded."""

    def __init__(self):
        self.spans: list[tuple[dict, Span]] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with collector.lock:
                    collector.paths.append(self.path)
                    assert self.headers.get("Content-Type") == "application/x-protobuf"
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    for resource_spans in request.resource_spans:
                        resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                        for scope_spans in resource_spans.scope_spans:
                            for span in scope_spans.spans:
                                collector.spans.append((resource, span))
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _attrs(span: Span) -> dict:
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = v.string_value or v.int_value or v.bool_value
    return out


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.stop()


@pytest.fixture
def traced(collector):
    """Tracing on for this test, exporting to the in-process collector (as OTEL_EXPORTER_OTLP_ENDPOINT does)."""
    assert not tracing.enabled()
    tracing.configure(endpoint=collector.url, service_name="dashtam-test", set_global=False)
    connections.close_all()  # new connections get the psycopg instrumentation
    try:
        yield collector
    finally:
        tracing.shutdown()


@pytest.fixture
def json_log_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def test_traces_url_follows_the_otlp_http_convention():
    assert tracing.traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://collector:4318/v1/traces") == "http://collector:4318/v1/traces"


def test_tracing_is_off_unless_an_endpoint_is_set():
    assert not tracing.enabled()
    assert tracing.current_ids() is None


@pytest.mark.integration
def test_a_request_and_its_task_reach_the_collector_under_one_trace(celery_worker, client, traced,
                                                                     json_log_lines):
    tag = f"trace{uuid.uuid4().hex[:8]}"
    request_id = f"traced-{uuid.uuid4()}"
    # The instrumentation ends the task's span in its own task_postrun receiver, connected when
    # tracing was configured; a receiver connected now runs after it, so once it has fired the span
    # is finished and the flush below carries it (the "ran" log line comes before the span ends).
    finished = threading.Event()

    def _postrun(sender=None, **kwargs):
        if getattr(sender, "name", "") == "tests.observability.traced_probe":
            finished.set()

    task_postrun.connect(_postrun, weak=False)
    # TRUSTED_PROXY_COUNT: the incoming X-Request-ID is the request id only through a trusted proxy.
    with override_settings(ROOT_URLCONF=__name__, TRUSTED_PROXY_COUNT=1):
        response = client.get(f"/traced/{tag}", HTTP_X_REQUEST_ID=request_id)
    assert response.status_code == 200
    wait_until(lambda: any(line.get("tag") == tag and line["message"] == "traced probe ran"
                           for line in json_log_lines()), timeout=60)
    try:
        assert finished.wait(timeout=60), "the task's postrun signal never fired"
    finally:
        task_postrun.disconnect(_postrun)
    tracing.shutdown()  # flushes the batch to the collector

    assert traced.paths and set(traced.paths) == {"/v1/traces"}
    assert {resource.get("service.name") for resource, _ in traced.spans} == {"dashtam-test"}
    server = [s for _, s in traced.spans if s.kind == Span.SPAN_KIND_SERVER]
    assert len(server) == 1, [s.name for _, s in traced.spans]
    request_span = server[0]
    assert _attrs(request_span)["dashtam.request_id"] == request_id
    trace_id = request_span.trace_id
    task_runs = [s for _, s in traced.spans if s.kind == Span.SPAN_KIND_CONSUMER
                 and "tests.observability.traced_probe" in s.name]
    assert len(task_runs) == 1, [s.name for _, s in traced.spans]
    assert task_runs[0].trace_id == trace_id
    assert _attrs(task_runs[0])["dashtam.request_id"] == request_id
    publishes = [s for _, s in traced.spans if s.kind == Span.SPAN_KIND_PRODUCER]
    assert publishes and all(s.trace_id == trace_id for s in publishes)
    if connection.vendor == "postgresql":  # psycopg's statements are children of the request and the task
        systems = {_attrs(s).get("db.system") or _attrs(s).get("db.system.name")
                   for _, s in traced.spans if s.kind == Span.SPAN_KIND_CLIENT and s.trace_id == trace_id}
        assert "postgresql" in systems, [s.name for _, s in traced.spans]

    # The JSON log lines of the request and of its task carry that trace id.
    lines = [line for line in json_log_lines() if line.get("tag") == tag]
    assert {line["message"] for line in lines} == {"enqueueing", "traced probe ran"}
    assert {line["trace_id"] for line in lines} == {trace_id.hex()}
    assert all(line["request_id"] == request_id for line in lines)
