"""Operators' view of the running service: Prometheus metrics and OpenTelemetry traces.

``metrics`` defines every metric and the few hooks that feed them (audit events,
rate-limit refusals, provider calls, Celery tasks, database and cache timings);
``views`` serves ``/metrics`` behind a bearer token or an allowed-network list;
``tracing`` is off unless OTEL_EXPORTER_OTLP_ENDPOINT is set. See docs/observability.md.
"""
