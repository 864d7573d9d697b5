"""Deployment defaults that fail safe (issue 12, section 6).

- dashtam.wsgi, dashtam.asgi and the Celery app default to production when DJANGO_ENV
  is unset; manage.py (and so `make run`) keeps development.
- SECURE_PROXY_SSL_HEADER counts only when TRUSTED_PROXY_COUNT > 0: a client talking
  straight to the server cannot claim HTTPS.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.foundation.test_configuration import ROOT, good_production_env

PRINT_ENV = "from django.conf import settings; print('ENV', settings.DJANGO_ENV, settings.DEBUG)"


def run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(  # fixed argv
        [sys.executable, "-c", code], cwd=ROOT, env={**base, **env},
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize("module", ["dashtam.wsgi", "dashtam.asgi"])
@pytest.mark.slow
def test_the_servers_refuse_to_start_in_development_when_django_env_is_forgotten(module):
    # Nothing set: production's checks run and name what is missing; DEBUG never comes on.
    result = run_python(f"import {module}", {})
    assert result.returncode == 3, result.stdout + result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("module", ["dashtam.wsgi", "dashtam.asgi", "dashtam.celery"])
@pytest.mark.slow
def test_a_complete_deployment_without_django_env_runs_as_production(module):
    env = good_production_env()
    del env["DJANGO_ENV"]
    result = run_python(f"import {module}; {PRINT_ENV}", env)
    assert "ENV production False" in result.stdout, result.stdout + result.stderr


@pytest.mark.slow
def test_celery_worker_start_checks_production_configuration_when_django_env_is_unset():
    code = ("from dashtam.celery import app; import django; django.setup(); "
            "from dashtam.celery import _check_configuration; _check_configuration()")
    result = run_python(code, {})
    assert result.returncode == 3 and "DJANGO_SECRET_KEY" in result.stderr, result.stdout + result.stderr


@pytest.mark.slow
def test_manage_py_keeps_development():
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    result = subprocess.run(  # fixed argv
        [sys.executable, "manage.py", "shell", "-c", PRINT_ENV], cwd=ROOT, env=base,
        capture_output=True, text=True, timeout=60,
    )
    assert "ENV development True" in result.stdout, result.stdout + result.stderr


@pytest.mark.slow
def test_an_explicit_django_env_wins_over_every_default():
    result = run_python(f"import dashtam.celery; import django; django.setup(); {PRINT_ENV}",
                        {"DJANGO_ENV": "development"})
    assert "ENV development True" in result.stdout, result.stdout + result.stderr


# --- Forwarded scheme ------------------------------------------------------------------
@pytest.fixture
def https_required(settings):
    settings.REQUIRE_HTTPS = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def test_without_a_trusted_proxy_a_client_cannot_claim_https(client, settings, https_required):
    settings.TRUSTED_PROXY_COUNT = 0
    response = client.get("/api/v1/auth/me", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 403
    assert response.json()["code"] == "PERMISSION_DENIED"
    assert "HTTPS is required" in response.json()["detail"]


def test_behind_a_trusted_proxy_its_forwarded_scheme_counts(client, settings, https_required):
    settings.TRUSTED_PROXY_COUNT = 1
    response = client.get("/api/v1/auth/me", HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 401  # through the HTTPS check, stopped by authentication
    assert client.get("/api/v1/auth/me", HTTP_X_FORWARDED_PROTO="http").status_code == 403


@pytest.mark.slow
def test_production_settings_trust_the_forwarded_scheme_only_with_a_proxy_count():
    env = good_production_env()
    code = "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'dashtam.settings'); import django; django.setup(); from django.conf import settings; print('HDR', settings.SECURE_PROXY_SSL_HEADER)"
    assert "HDR None" in run_python(code, {**env, "TRUSTED_PROXY_COUNT": "0"}).stdout
    with_proxy = run_python(code, {**env, "TRUSTED_PROXY_COUNT": "1"})
    assert "HDR ('HTTP_X_FORWARDED_PROTO', 'https')" in with_proxy.stdout, with_proxy.stdout + with_proxy.stderr


@pytest.mark.parametrize(("var", "value"), [("JWT_ISSUER", " "), ("JWT_AUDIENCE", ""), ("JSON_MAX_DEPTH", "1"),
                                            ("PASSWORD_LEGACY_CHECK_SECONDS", "-1")])
@pytest.mark.slow
def test_a_bad_hardening_setting_stops_start_up_naming_the_variable(var, value):
    from tests.foundation.test_configuration import run_check

    result = run_check({"DJANGO_ENV": "development", var: value})
    assert result.returncode != 0 and f"{var}:" in result.stdout + result.stderr


@pytest.mark.slow
def test_the_wsgi_application_moves_what_it_loaded_out_of_the_collectors_reach():
    # Loaded once and kept for the life of the worker: a full collection no longer walks it
    # (the pauses it caused were the tail of the latency, docs/performance.md). What the
    # requests allocate afterwards is collected as usual.
    env = good_production_env()
    code = ("import gc; before = gc.get_freeze_count(); import dashtam.wsgi; "
            "print('FROZEN', before, gc.get_freeze_count(), gc.isenabled())")
    result = run_python(code, env)
    assert result.returncode == 0, result.stdout + result.stderr
    before, after, enabled = result.stdout.split("FROZEN", 1)[1].split()
    assert int(before) == 0 and int(after) > 100_000, result.stdout
    assert enabled == "True"
