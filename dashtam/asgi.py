"""ASGI entry point. Refuses to start when misconfigured."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashtam.settings")
application = get_asgi_application()

from dashtam.startup import fail_on_misconfiguration  # noqa: E402

fail_on_misconfiguration()
