"""Multiprocess mode: samples written by several worker processes add up in one scrape (gunicorn)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "multiprocess-scrape-token-0123456789abcdef"

WORKER = """
import os, sys, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashtam.settings")
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
client = Client()
for _ in range(int(sys.argv[1])):
    assert client.get("/healthz").status_code == 200
"""


@pytest.mark.django_db
@pytest.mark.slow
def test_two_worker_processes_are_counted_together(client, settings, tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(PROMETHEUS_MULTIPROC_DIR=str(tmp_path), DJANGO_ENV="test")
    for count in (3, 4):  # two "gunicorn workers", one after the other
        subprocess.run([sys.executable, "-c", WORKER, str(count)], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=120)
    assert list(tmp_path.glob("counter_*.db"))  # each process wrote its own file

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # this process scrapes as gunicorn's would
    settings.METRICS_BEARER_TOKEN = TOKEN
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    healthz = sum(s.value for s in families["dashtam_http_requests"].samples
                  if s.name == "dashtam_http_requests_total" and s.labels["route"] == "healthz")
    assert healthz == 7
    assert "dashtam_circuit_breaker_state" in families  # the scrape-time gauges are still there
