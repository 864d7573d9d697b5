"""WSGI entry point (gunicorn dashtam.wsgi). Refuses to start when misconfigured."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashtam.settings")
application = get_wsgi_application()

from dashtam.startup import fail_on_misconfiguration  # noqa: E402

fail_on_misconfiguration()
