"""The bench's metrics-cost variant and the Security overview pages (code only: the lead runs the bench)."""

from __future__ import annotations

import inspect

from bench import report, run, scenarios
from bench.stats import spread
from bench.wrk import WrkResult


def _wrk(rps: float, cpu: float) -> WrkResult:
    return WrkResult(requests=int(rps * 10), duration_s=10, rps=rps, p50_ms=1, p90_ms=2, p95_ms=2, p99_ms=3,
                     max_ms=5, mean_ms=1, errors=0, non_2xx=0, socket_errors=0, timeouts=0,
                     cpu_ms_per_request=cpu)


def _summary(rps: float) -> dict:
    s = spread([rps])
    return {"rps": s, "p50_ms": s, "p95_ms": s, "p99_ms": s, "errors": 0, "peak_rss_mb": 80.0,
            "cpu_ms_per_request": spread([1.0])}


def test_metrics_overhead_compares_me_with_metrics_on_and_off_per_round():
    results = {"me": [_wrk(950, 1.05), _wrk(960, 1.04)], "me_metrics_off": [_wrk(1000, 1.0), _wrk(1000, 1.0)]}
    out = {"me": _summary(955), "me_metrics_off": _summary(1000)}
    overhead = scenarios._overhead(results, out, "me_metrics_off", "metrics_overhead", limit=5)
    assert round(overhead["cost_pct"]["median"], 6) == 4.5
    assert overhead["met"] is True
    assert overhead["target"] == scenarios.TARGETS["metrics_overhead"]
    results["me"] = [_wrk(900, 1.1), _wrk(900, 1.1)]
    assert scenarios._overhead(results, out, "me_metrics_off", "metrics_overhead", limit=5)["met"] is False


def test_the_report_and_the_runner_know_the_metrics_scenario():
    assert "metrics_overhead" in run.ORDER and "metrics_overhead" in report.ORDER
    results = {"me": [_wrk(950, 1.05)], "me_metrics_off": [_wrk(1000, 1.0)]}
    out = {"me": _summary(950), "me_metrics_off": _summary(1000)}
    document = {"started_at": "x", "short": True, "machine": {}, "options": {"runs": 1}, "scenarios": {
        "metrics_overhead": scenarios._overhead(results, out, "me_metrics_off", "metrics_overhead", limit=5)}}
    table = report.markdown(document)
    assert "| metrics_overhead |" in table and "metrics on 950/s vs off 1,000/s" in table


def test_the_metrics_off_variant_switches_the_setting_the_app_reads():
    source = inspect.getsource(scenarios.http_variants)
    assert '"METRICS_ENABLED": "false"' in source
    from django.conf import settings

    assert hasattr(settings, "METRICS_ENABLED")


def test_audit_admin_measures_the_security_overview_in_every_window():
    source = inspect.getsource(scenarios.audit_admin)
    for window in ("24h", "7d", "30d"):
        assert f"overview/?window={window}" in source
    assert scenarios.AUDIT_OVERVIEW_LIMIT_MS == 500
