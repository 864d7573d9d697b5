"""The benchmark baseline view is routed only when BENCH_ENDPOINTS is on."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import clear_url_caches

ROOT = Path(__file__).resolve().parents[2]


def _reload_urls():
    import dashtam.urls

    importlib.reload(dashtam.urls)
    clear_url_caches()


@pytest.fixture
def bench_routes(settings):
    settings.BENCH_ENDPOINTS = True
    _reload_urls()
    yield
    settings.BENCH_ENDPOINTS = False
    _reload_urls()


def test_baseline_answers_without_credentials_or_database(bench_routes, api_client):
    # No db fixture: pytest-django fails the test on any database access.
    response = api_client.get("/api/v1/bench/baseline")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["X-Request-ID"]


def test_baseline_is_not_routed_by_default(db, api_client):
    response = api_client.get("/api/v1/bench/baseline")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "NOT_FOUND"


def test_baseline_is_in_the_schema_only_when_enabled(bench_routes, api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/v1/bench/baseline" in response.json()["paths"]


@pytest.mark.slow
def test_production_leaves_bench_endpoints_off_unless_enabled():
    env = {k: v for k, v in os.environ.items() if k != "BENCH_ENDPOINTS"}
    env["DJANGO_ENV"] = "production"
    code = "from django.conf import settings; print(settings.BENCH_ENDPOINTS)"
    out = subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE',"
         " 'dashtam.settings'); django.setup(); " + code],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
