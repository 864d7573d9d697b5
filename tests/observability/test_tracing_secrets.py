"""Traces never carry a secret from a URL's query string.

The OAuth callback's URL holds a live authorization code and the flow's state (the
credential that completes the connection); the tracing backend (Jaeger, a collector)
is read by more people than the application's database. Query values are redacted on
every request span; parameter names stay, so a trace still shows what was asked.
"""

from __future__ import annotations

import pytest

from dashtam.observability import tracing
from tests.observability.test_tracing import Collector, _attrs


@pytest.fixture
def traced_collector():
    collector = Collector()
    assert not tracing.enabled()
    tracing.configure(endpoint=collector.url, service_name="dashtam-test", set_global=False)
    try:
        yield collector
    finally:
        tracing.shutdown()
        collector.stop()


def test_the_oauth_callbacks_code_and_state_never_reach_a_trace(client, traced_collector):
    code, state = "CODEsecret0123456789abcdef", "STATEsecret0123456789abcdef"
    response = client.get(f"/api/v1/providers/oauth/schwab/callback?code={code}&state={state}")
    assert response.status_code == 302
    tracing.shutdown()  # flushes the batch to the collector

    server = [s for _, s in traced_collector.spans if s.kind == 2]  # SPAN_KIND_SERVER
    assert len(server) == 1, [s.name for _, s in traced_collector.spans]
    values = [str(v) for _, s in traced_collector.spans for v in _attrs(s).values()]
    assert not [v for v in values if code in v or state in v], values
    # The span still says which route and which parameters were asked for.
    attrs = _attrs(server[0])
    target = attrs.get("http.target") or attrs.get("url.query") or attrs.get("http.url") or ""
    assert "code=" in target and "state=" in target, attrs


def test_redact_query_keeps_names_and_drops_values():
    assert tracing.redact_query("/a/b?code=x&state=y/z") == "/a/b?code=REDACTED&state=REDACTED"
    assert tracing.redact_query("http://h/p") == "http://h/p"
    assert tracing.redact_query("code=x/y&flag", bare=True) == "code=REDACTED&flag=REDACTED"
