"""docker/: the compose file, Prometheus' scrape config and the Grafana dashboard parse, and
every metric the dashboard queries is one the app really exposes (Docker cannot run here)."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
TOKEN = "deploy-files-scrape-token-0123456789abcdef"


def _exposed(client, settings) -> set[str]:
    """Sample names a scrape can carry (families expand into _total, _bucket, _count, _sum ...)."""
    settings.METRICS_BEARER_TOKEN = TOKEN
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_count", "_sum", "_created"]}
        names.update(family.name + s for s in suffixes.get(family.type, []))
    return names


def test_compose_runs_prometheus_grafana_and_a_trace_collector():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"prometheus", "grafana", "jaeger", "web", "worker"} <= set(services)
    web = services["web"]
    assert web["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert web["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/var/run/dashtam-metrics"
    assert "granian --interface wsgi" in web["command"] and "dashtam.wsgi:application" in web["command"]
    assert "metrics:/var/run/dashtam-metrics" in services["worker"]["volumes"]  # the worker's tasks count too
    assert compose["secrets"]["metrics_token"] == {"environment": "METRICS_BEARER_TOKEN"}
    mounted = [v.split(":")[0] for v in services["grafana"]["volumes"]]
    for source in mounted + [v.split(":")[0] for v in services["prometheus"]["volumes"]]:
        assert (DOCKER / source).exists(), source
    # gunicorn stays supported (docs/operations/deployment.md): the config module its command
    # line names exists and has the hook gunicorn calls.
    from dashtam.observability import gunicorn

    assert callable(gunicorn.child_exit)


def test_prometheus_scrapes_metrics_with_the_bearer_token():
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/metrics_token"}
    assert job["static_configs"][0]["targets"] == ["web:8000"]


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus():
    datasources = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    uid = datasources["datasources"][0]["uid"]
    providers = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/dashtam.yaml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboard = json.loads((DOCKER / "grafana/dashboards/dashtam.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and all(t["datasource"]["uid"] == uid for p in panels for t in p["targets"])


@pytest.mark.django_db
@pytest.mark.slow
def test_every_metric_on_the_dashboard_exists_and_every_issue_metric_is_on_it(client, settings):
    dashboard = json.loads((DOCKER / "grafana/dashboards/dashtam.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]
    used = {m for expr in exprs for m in re.findall(r"\bdashtam_[a-z0-9_]+", expr)}
    exposed = _exposed(client, settings)
    assert used - exposed == set()
    from tests.observability.test_metrics import EXPECTED

    for family in EXPECTED:
        assert any(name == family or name.startswith(family + "_") for name in used), family


def test_unauthenticated_observability_uis_listen_on_the_loopback_only():
    """Prometheus' UI and API serve every scraped metric, Jaeger's every trace, and Mailpit every
    email (one-time links included), all without a login. Published on every interface, they
    would hand anyone on the network what /metrics' bearer token protects."""
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    for name in ("prometheus", "jaeger", "mailpit"):
        for port in services[name].get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def _granian_params(argv: list[str], env: dict[str, str]) -> dict:
    """What granian's own command line makes of ``argv`` (it refuses an unknown option)."""
    from granian.cli import cli

    assert argv[0] == "granian", argv
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return cli.make_context("granian", argv[1:], auto_envvar_prefix="GRANIAN").params
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_the_image_and_compose_serve_the_wsgi_app_with_granian_one_process_per_core():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*?\])\s*$", dockerfile, re.S | re.M).group(1).replace("\\\n", ""))
    env = dict(re.findall(r"\b(GRANIAN_[A-Z_]+)=(\S+)", dockerfile))
    params = _granian_params(cmd, env)
    assert params["interface"] == "wsgi" and params["app"] == "dashtam.wsgi:application"
    assert (params["host"], params["port"]) == ("0.0.0.0", 8000)
    assert params["workers"] == 2 and params["blocking_threads"] == 8 and params["respawn_failed_workers"]
    assert not params["log_access_enabled"]  # the app writes the one access line, without query strings

    web = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]["web"]
    shell, flag, script = shlex.split(web["command"])
    assert (shell, flag) == ("sh", "-c")
    served = shlex.split(script.split("exec ", 1)[1])
    assert _granian_params(served, env) == params  # the same server, the same settings
