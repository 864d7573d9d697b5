"""ASGI entry point. Refuses to start when misconfigured."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashtam.settings")
# A deployment that forgot DJANGO_ENV gets production's rules (DEBUG off, secrets
# required): the settings' default, unless DJANGO_ENV is in the environment or .env.
os.environ.setdefault("DJANGO_ENV_DEFAULT", "production")
application = get_asgi_application()

from dashtam.startup import fail_on_misconfiguration  # noqa: E402

fail_on_misconfiguration()
