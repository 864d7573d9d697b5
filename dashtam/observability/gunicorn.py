"""gunicorn settings for metrics in multiprocess mode: ``gunicorn --config python:dashtam.observability.gunicorn``.

Every worker process writes its samples to PROMETHEUS_MULTIPROC_DIR; when one
exits, its live-only values are dropped (prometheus_client's ``mark_process_dead``)
while its counters stay counted.
"""

from __future__ import annotations

import os


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
