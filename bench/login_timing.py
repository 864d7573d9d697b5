"""Medians of repeated logins on each path, with production's password hashers.

    DJANGO_ENV=test python bench/login_timing.py [--rounds N]

Runs in one process against a throw-away SQLite database, through the real HTTP
stack (Django's test client: middleware, DRF, axes, the login service), with
Argon2id at Django's parameters and a legacy account hashed with bcrypt at 12
rounds, as the earlier Dashtam stored them. Prints each path's median and its
ratio to the slowest; issue 12 asks every path to be within 20%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_ENV", "test")
os.environ["DATABASE_URL"] = "sqlite:///:memory:"
os.environ.pop("REDIS_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashtam.settings")

import django

django.setup()

import logging  # noqa: E402

logging.getLogger("dashtam.request").setLevel(logging.WARNING)  # one access line per login is noise here

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

PASSWORD = "Correct-Horse-9-Battery"  # a benchmark account
WRONG = "Wrong-Horse-9-Battery"
LONG = "Aa1!" + "z" * 100


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9, help="logins per path (median of these)")
    args = parser.parse_args()
    setup_test_environment()
    call_command("migrate", verbosity=0, run_syncdb=True)
    hashers = ["accounts.hashers.Argon2idPasswordHasher", "accounts.hashers.LegacyBCryptPasswordHasher"]
    with override_settings(PASSWORD_HASHERS=hashers, RATELIMIT_ENABLE=False, AXES_ENABLED=False,
                           ALLOWED_HOSTS=["*"]):
        import bcrypt

        from accounts.models import User

        def make(email, encoded=None):
            user = User.objects.create_user(email=email, password=PASSWORD)
            User.objects.filter(pk=user.pk).update(email_verified_at=django.utils.timezone.now())
            if encoded:
                User.objects.filter(pk=user.pk).update(password=encoded)
            return user

        make("modern@example.com")
        legacy_hash = "bcrypt$" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()
        for i in range(args.rounds + 1):  # one per right-password login: it upgrades the hash
            make(f"legacy{i}@example.com", legacy_hash)
        paths = {
            "legacy bcrypt, wrong password": lambda i: ("legacy0@example.com", WRONG),
            "legacy bcrypt, over 72 bytes": lambda i: ("legacy0@example.com", LONG),
            "legacy bcrypt, right password": lambda i: (f"legacy{i + 1}@example.com", PASSWORD),
            "unknown email": lambda i: ("nobody@example.com", WRONG),
            "argon2id, wrong password": lambda i: ("modern@example.com", WRONG),
        }
        client = Client()
        results = {}
        for name, credentials in paths.items():
            samples = []
            for i in range(args.rounds):
                email, password = credentials(i)
                started = time.perf_counter()
                response = client.post("/api/v1/auth/login", {"email": email, "password": password},
                                       content_type="application/json")
                samples.append((time.perf_counter() - started) * 1000)
                assert response.status_code in (200, 401), response.content
            results[name] = statistics.median(samples)
    slowest = max(results.values())
    print(f"{'path':34} median ms   vs slowest")
    for name, median in results.items():
        print(f"{name:34} {median:9.1f}   {median / slowest:6.0%}")
    spread = (slowest - min(results.values())) / slowest
    print(f"spread {spread:.0%} ({'within' if spread <= 0.2 else 'OVER'} 20%); database {settings.DATABASES['default']['ENGINE']}")


def hash_timing() -> None:
    """What the access log's ``hash_ms`` reports against the wall clock (the tests only count
    the timed computations): a login's hash time within its ``duration_ms``, and a bcrypt
    check, whose verify() calls encode(), timed once."""
    import bcrypt
    from django.contrib.auth.hashers import check_password

    from audit import context

    lines = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record)

    access = logging.getLogger("dashtam.request")
    saved = access.handlers, access.propagate
    access.handlers, access.propagate = [Keep(logging.INFO)], False  # kept, not printed
    access.setLevel(logging.INFO)
    hashers = ["accounts.hashers.Argon2idPasswordHasher", "accounts.hashers.LegacyBCryptPasswordHasher"]
    try:
        with override_settings(PASSWORD_HASHERS=hashers, RATELIMIT_ENABLE=False, AXES_ENABLED=False,
                               ALLOWED_HOSTS=["*"]):
            client = Client()
            for email in ("modern@example.com", "nobody@example.com"):
                lines.clear()
                client.post("/api/v1/auth/login", {"email": email, "password": WRONG},
                            content_type="application/json")
                line = lines[-1]
                print(f"login as {email:22} hash_ms {line.hash_ms:7.1f} of duration_ms {line.duration_ms:7.1f}"
                      f" ({'within' if 0 < line.hash_ms <= line.duration_ms else 'NOT within'})")
            encoded = "bcrypt$" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()
            token = context.set_context(context.RequestContext(request_id="bench"))
            try:
                started = time.perf_counter()
                check_password(PASSWORD, encoded)
                wall_ms = (time.perf_counter() - started) * 1000
                hash_ms = context.get().extra["hash_ms"]
            finally:
                context.reset(token)
            print(f"bcrypt check: hash_ms {hash_ms:.1f} of {wall_ms:.1f} ms wall"
                  f" ({'counted once' if 0 < hash_ms <= wall_ms else 'COUNTED TWICE'})")
    finally:
        access.handlers, access.propagate = saved
        access.setLevel(logging.WARNING)


if __name__ == "__main__":
    main()
    hash_timing()
