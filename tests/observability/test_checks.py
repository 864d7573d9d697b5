"""A bad metrics or tracing setting stops start-up with a message naming the variable."""

from __future__ import annotations

import pytest

from dashtam.observability.checks import check_observability


@pytest.mark.parametrize(("name", "value", "variable"), [
    ("METRICS_ALLOWED_NETWORKS", ["10.0.0.0/8", "not-a-network"], "METRICS_ALLOWED_NETWORKS"),
    ("METRICS_BEARER_TOKEN", "short", "METRICS_BEARER_TOKEN"),
    ("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/metrics", "PROMETHEUS_MULTIPROC_DIR"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", "OTEL_EXPORTER_OTLP_ENDPOINT"),
])
def test_a_bad_value_is_refused_by_name(settings, name, value, variable):
    setattr(settings, name, value)
    errors = check_observability()
    assert len(errors) == 1 and errors[0].msg.startswith(variable + ":")
    assert variable in errors[0].hint


def test_good_values_pass(settings, tmp_path):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "127.0.0.1", "2001:db8::/32", ""]
    settings.METRICS_BEARER_TOKEN = "a-long-random-scrape-token-0123456789"
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = "http://otel-collector:4318"
    assert check_observability() == []
