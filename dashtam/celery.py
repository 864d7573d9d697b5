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
def _ensure_data_dirs(sender, **kwargs):
    # Beat opens its schedule file, and kombu's filesystem transport (the embedded broker) its
    # folders, before any of their signals fire: make them exist (CELERY_DATA_DIR) here, once
    # the app reads its configuration (the settings module writes nothing). Private to the
    # user (0700): queued messages carry task arguments.
    from pathlib import Path

    folders = []
    if sender.conf.beat_schedule_filename:
        folders.append(Path(sender.conf.beat_schedule_filename).parent)
    options = sender.conf.broker_transport_options or {}
    if str(sender.conf.broker_url or "").startswith("filesystem:"):
        folders += [Path(options[key]) for key in ("data_folder_in", "data_folder_out", "processed_folder",
                                                   "control_folder") if options.get(key)]
    for folder in folders:
        try:
            folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
        except OSError:
            pass  # beat or the transport then reports the path it cannot write, which names the problem


@signals.worker_init.connect
def _check_configuration(**kwargs):
    from dashtam.startup import fail_on_misconfiguration

    fail_on_misconfiguration()


@signals.beat_init.connect
def _check_configuration_beat(**kwargs):
    from dashtam.startup import fail_on_misconfiguration

    fail_on_misconfiguration()
