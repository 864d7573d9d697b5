#!/usr/bin/env python
"""Django's command-line utility for Dashtam."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashtam.settings")
    # manage.py is the developer's tool (make run, migrate, shell): development unless
    # DJANGO_ENV (environment or .env) says otherwise. gunicorn, ASGI and Celery default
    # to production (dashtam/settings.py). Inherited by run_embedded's worker.
    os.environ.setdefault("DJANGO_ENV_DEFAULT", "development")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
