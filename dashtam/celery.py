"""The Celery app.

Production: a Redis broker (CELERY_BROKER_URL, defaulting to REDIS_URL), with
``celery -A dashtam worker`` and ``celery -A dashtam beat``. Embedded default
(no broker configured): kombu's filesystem transport under CELERY_DATA_DIR, so
``make run`` can start one worker with beat and periodic work still runs.
"""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashtam.settings")
# No default is set here: this module is imported by every entry point (the dashtam
# package imports it), so the settings decide: DJANGO_ENV unset means production for
# `celery -A dashtam`, while manage.py (and run_embedded's worker, which inherits its
# environment) sets DJANGO_ENV_DEFAULT=development first.

app = Celery("dashtam")
app.config_from_object("django.conf:settings", namespace="CELERY")


app.autodiscover_tasks()


@app.on_after_configure.connect
def _ensure_beat_schedule_dir(sender, **kwargs):
    # Beat opens its schedule file before any of its signals fire: make its folder
    # exist (CELERY_DATA_DIR) in every environment, not only the embedded one.
    from pathlib import Path

    filename = sender.conf.beat_schedule_filename
    if filename:
        try:
            Path(filename).parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # beat then reports the path it cannot write, which names the problem


@signals.worker_init.connect
def _check_configuration(**kwargs):
    from dashtam.startup import fail_on_misconfiguration

    fail_on_misconfiguration()


@signals.beat_init.connect
def _check_configuration_beat(**kwargs):
    from dashtam.startup import fail_on_misconfiguration

    fail_on_misconfiguration()
