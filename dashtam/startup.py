"""Run the system checks when a server or worker starts, not only under manage.py.

gunicorn and celery do not run Django's checks. Without this a production
process with a missing key would start and fail at the first request.
"""

from __future__ import annotations

import sys

from django.core import checks


def fail_on_misconfiguration() -> None:
    errors = [m for m in checks.run_checks() if m.is_serious() and not m.is_silenced()]
    if errors:
        lines = "\n".join(f"  - {m.id}: {m.msg}" + (f" ({m.hint})" if m.hint else "") for m in errors)
        sys.stderr.write(f"Dashtam refuses to start; fix the configuration:\n{lines}\n")
        raise SystemExit(3)
