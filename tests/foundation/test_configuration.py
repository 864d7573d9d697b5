"""A misconfigured production start fails with one message naming every bad variable."""

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def run_check(env: dict, *args: str) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(  # fixed argv
        [sys.executable, "manage.py", "check", *args],
        cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60,
    )


def good_production_env() -> dict:
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return {
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "FIELD_ENCRYPTION_KEYS": f"k1:{key}",
        "DJANGO_ALLOWED_HOSTS": "api.example.com",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "EMAIL_URL": "smtp://127.0.0.1:1025",
        "DEFAULT_FROM_EMAIL": "no-reply@example.com",
        "FRONTEND_URL": "https://app.example.com",
    }


def test_production_with_nothing_set_names_every_missing_variable():
    result = run_check({"DJANGO_ENV": "production"})
    assert result.returncode != 0
    output = result.stderr + result.stdout
    for var in ("DJANGO_SECRET_KEY", "JWT_SIGNING_KEY", "FIELD_ENCRYPTION_KEYS", "DJANGO_ALLOWED_HOSTS",
                "DATABASE_URL", "REDIS_URL", "DEFAULT_FROM_EMAIL", "FRONTEND_URL", "EMAIL_URL"):
        assert var in output, f"{var} not named in:\n{output}"
    assert "Traceback" not in output


def test_weak_keys_and_debug_are_refused_in_one_message():
    env = good_production_env()
    env.update({
        "JWT_SIGNING_KEY": "short",
        "FIELD_ENCRYPTION_KEYS": "k1:" + base64.urlsafe_b64encode(b"x" * 16).decode(),
        "DJANGO_DEBUG": "true",
    })
    result = run_check(env)
    output = result.stderr + result.stdout
    assert result.returncode != 0
    assert "JWT_SIGNING_KEY: is weak" in output
    assert "FIELD_ENCRYPTION_KEYS" in output and "16 bytes" in output
    assert "DJANGO_DEBUG" in output


def test_jwt_key_equal_to_secret_key_is_refused():
    env = good_production_env()
    env["JWT_SIGNING_KEY"] = env["DJANGO_SECRET_KEY"]
    result = run_check(env)
    assert result.returncode != 0
    assert "must differ from DJANGO_SECRET_KEY" in result.stderr + result.stdout


def test_a_complete_production_environment_passes_check_deploy():
    result = run_check(good_production_env(), "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr + result.stdout
