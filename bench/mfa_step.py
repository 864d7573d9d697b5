"""What the second-factor step costs on its own: a quick in-process measurement, not `make bench`.

    DJANGO_ENV=test .venv/bin/python bench/mfa_step.py [--runs 200]
    DATABASE_URL=postgres://... REDIS_URL=redis://... DJANGO_ENV=test .venv/bin/python bench/mfa_step.py

It creates a throw-away test database (as pytest does), then times through Django's
test client (the whole middleware stack, no network):

* ``login`` of an account without a factor (password -> tokens), the password hash alone, and
  the factor check such a login pays (``mfa_methods_for``: one indexed EXISTS);
* ``login`` of an account with a factor (password -> mfa_required);
* ``login/mfa`` with a TOTP code (mfa_token + code -> tokens).

It prints the median and p90 of each in milliseconds, and the SQL queries each one runs.
The test settings hash with cheap Argon2 parameters, so "over the hash" is what to read.
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
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashtam.settings")


def _stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    return f"median {statistics.median(ordered):7.2f} ms   p90 {p90:7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import (
        CaptureQueriesContext,
        setup_databases,
        setup_test_environment,
        teardown_databases,
    )

    settings.RATELIMIT_ENABLE = False  # measure the step, not the limiter's refusals
    setup_test_environment()
    old = setup_databases(verbosity=0, interactive=False)
    try:
        import pyotp
        from rest_framework.test import APIClient

        from accounts.mfa.models import TotpDevice
        from accounts.mfa.services import totp_demo_device_ensure
        from accounts.models import User

        password = "Bench-Passw0rd-42!"
        plain = User.objects.create_user(email="plain@bench.local", password=password)
        guarded = User.objects.create_user(email="mfa@bench.local", password=password)
        User.objects.filter(pk__in=[plain.pk, guarded.pk]).update(email_verified_at=django.utils.timezone.now())
        secret = totp_demo_device_ensure(user=guarded)
        client = APIClient()

        def post(url, body):
            return client.post(url, body, format="json")

        from accounts.mfa.services import mfa_methods_for

        timings: dict[str, list[float]] = {"hash": [], "factor check (no factor)": [], "login (no factor)": [],
                                           "login -> mfa_required": [], "login/mfa (TOTP)": []}
        queries: dict[str, int] = {}
        for i in range(args.runs + 10):
            warm = i < 10
            t = time.perf_counter()
            plain.check_password(password)
            hashed = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            mfa_methods_for(user=plain)  # what a login without a factor pays for the step
            check = (time.perf_counter() - t) * 1000

            with CaptureQueriesContext(connection) as q1:
                t = time.perf_counter()
                assert post("/api/v1/auth/login", {"email": plain.email, "password": password}).status_code == 200
                login_plain = (time.perf_counter() - t) * 1000
            with CaptureQueriesContext(connection) as q2:
                t = time.perf_counter()
                first = post("/api/v1/auth/login", {"email": guarded.email, "password": password})
                login_mfa_required = (time.perf_counter() - t) * 1000
            token = first.json()["mfa_token"]
            # Replay protection accepts each step once: forget the last step (outside the timing).
            TotpDevice.objects.filter(user=guarded).update(last_used_step=None)
            code = pyotp.TOTP(secret).now()
            with CaptureQueriesContext(connection) as q3:
                t = time.perf_counter()
                done = post("/api/v1/auth/login/mfa", {"mfa_token": token, "code": code})
                step = (time.perf_counter() - t) * 1000
            assert done.status_code == 200, done.content
            if warm:
                continue
            for name, value in zip(timings, (hashed, check, login_plain, login_mfa_required, step), strict=True):
                timings[name].append(value)
            queries.update({"login (no factor)": len(q1), "login -> mfa_required": len(q2),
                            "login/mfa (TOTP)": len(q3)})
        print(f"{connection.vendor}, cache {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}, "
              f"{args.runs} runs")
        for name, samples in timings.items():
            extra = f"   {queries[name]} queries" if name in queries else ""
            print(f"  {name:24s} {_stats(samples)}{extra}")
        hash_ms = statistics.median(timings["hash"])
        print(f"  login over the hash (no factor): {statistics.median(timings['login (no factor)']) - hash_ms:.2f} ms")
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
