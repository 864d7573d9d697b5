"""OpenTelemetry tracing: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.

When on, the official instrumentations trace Django requests, psycopg statements,
outgoing ``requests`` calls (the providers), Redis commands and Celery tasks, and
export the spans over OTLP/HTTP (protobuf) to ``<endpoint>/v1/traces`` in batches.
Celery's instrumentation carries the trace context in the task message, so a
request's trace continues into the tasks it enqueued. Each request span carries
the request id (``dashtam.request_id``), and each JSON log line written inside a
span carries ``trace_id`` and ``span_id`` (dashtam.logging).
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings

logger = logging.getLogger("dashtam.tracing")

REQUEST_ID_ATTRIBUTE = "dashtam.request_id"

_lock = threading.Lock()
_state: dict = {}


def traces_url(endpoint: str) -> str:
    """OTLP/HTTP's traces URL for an endpoint given as a base URL (as the variable is specified)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


# Request-span attributes that carry the query string: its values can be secrets (the
# OAuth callback's code and state), so only the parameter names reach a trace.
_URL_ATTRIBUTES = ("http.url", "http.target", "url.full", "url.query")


def redact_query(value: str, *, bare: bool = False) -> str:
    """``value`` (a URL or a target; a query alone when ``bare``) with every query value replaced by REDACTED."""
    if bare:
        head, sep, query = "", "", value
    else:
        head, sep, query = value.partition("?")
        if not sep:
            return value
    names = [part.split("=", 1)[0] for part in query.split("&") if part]
    redacted = "&".join(f"{name}=REDACTED" for name in names)
    return f"{head}{sep}{redacted}"


def _request_hook(span, request) -> None:
    if span is None or not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            span.set_attribute(key, redact_query(value, bare=key == "url.query"))


def _response_hook(span, request, response) -> None:
    request_id = getattr(request, "request_id", None)
    if span is not None and span.is_recording() and request_id:
        span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)


def _task_prerun(task=None, **kwargs) -> None:
    from opentelemetry import trace

    from dashtam.context_celery import HEADER_REQUEST_ID, _header

    span = trace.get_current_span()
    if span.is_recording():
        request_id = _header(task, HEADER_REQUEST_ID)
        if request_id:
            span.set_attribute(REQUEST_ID_ATTRIBUTE, str(request_id))


def configure_from_settings() -> None:
    if settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        configure(endpoint=settings.OTEL_EXPORTER_OTLP_ENDPOINT, service_name=settings.OTEL_SERVICE_NAME)


def configure(*, endpoint: str, service_name: str, set_global: bool = True, exporter=None):
    """Instrument this process and export to ``endpoint``; returns the TracerProvider.

    Idempotent: a second call returns the provider of the first. ``exporter`` replaces
    the OTLP exporter (tests use the real one against an in-process collector).
    """
    with _lock:
        if "provider" in _state:
            return _state["provider"]
        from celery import signals as celery_signals
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=traces_url(endpoint))))
        if set_global:
            trace.set_tracer_provider(provider)
        DjangoInstrumentor().instrument(tracer_provider=provider, request_hook=_request_hook,
                                        response_hook=_response_hook)
        PsycopgInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
        RequestsInstrumentor().instrument(tracer_provider=provider)
        RedisInstrumentor().instrument(tracer_provider=provider)
        CeleryInstrumentor().instrument(tracer_provider=provider)
        celery_signals.task_prerun.connect(_task_prerun, dispatch_uid="dashtam.tracing.request_id", weak=False)
        _state["provider"] = provider
        logger.info("tracing on", extra={"endpoint": traces_url(endpoint), "service": service_name})
        return provider


def shutdown() -> None:
    """Flush and stop exporting, and remove the instrumentation (tests; a process ends anyway)."""
    with _lock:
        provider = _state.pop("provider", None)
        if provider is None:
            return
        from celery import signals as celery_signals
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        for instrumentor in (DjangoInstrumentor(), PsycopgInstrumentor(), RequestsInstrumentor(),
                             RedisInstrumentor(), CeleryInstrumentor()):
            instrumentor.uninstrument()
        celery_signals.task_prerun.disconnect(dispatch_uid="dashtam.tracing.request_id")
        provider.force_flush()
        provider.shutdown()


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in hex of the span in progress, or None (no tracing, or outside a span)."""
    from opentelemetry import trace

    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def enabled() -> bool:
    return "provider" in _state
