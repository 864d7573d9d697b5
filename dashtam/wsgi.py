"""WSGI entry point (granian or gunicorn: dashtam.wsgi:application). Refuses to start when misconfigured."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashtam.settings")
# A deployment that forgot DJANGO_ENV gets production's rules (DEBUG off, secrets
# required): the settings' default, unless DJANGO_ENV is in the environment or .env.
os.environ.setdefault("DJANGO_ENV_DEFAULT", "production")
application = get_wsgi_application()

from dashtam.startup import fail_on_misconfiguration  # noqa: E402

fail_on_misconfiguration()

# Everything loaded so far (Django, the apps, the URLconf's views: several hundred thousand
# objects) lives as long as the process. Moved out of the collector's reach, it is no longer
# traversed by every full collection, which otherwise paused the worker's threads for tens of
# milliseconds at a time: the tail of the latency (docs/performance.md). What is allocated from
# here on is collected as usual; only cyclic garbage of the start itself is let go first.
gc.collect()
gc.freeze()
