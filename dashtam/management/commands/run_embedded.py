"""`make run`: the development server and a Celery worker with beat, started and stopped together.

The worker runs as a child process. However this command ends (Ctrl-C, SIGTERM
to it or to its process group, or its parent `make` being killed), the worker
is stopped with it: nothing is left holding the queue or the port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Serve the API with runserver and run a Celery worker with beat beside it (development)."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--loglevel", default="WARNING")

    def handle(self, *args, addrport: str, loglevel: str, **options):
        if settings.IS_PRODUCTION:
            raise CommandError("run_embedded is for development; production runs gunicorn, worker and beat.")
        worker = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "celery", "-A", "dashtam", "worker", "--beat", "--pool=solo",
             f"--loglevel={loglevel}",
             "--schedule", str(settings.CELERY_DATA_DIR / "beat-schedule")],
        )
        stopping = threading.Event()

        def stop(*_args):
            if stopping.is_set():
                return
            stopping.set()
            if worker.poll() is None:
                worker.terminate()  # Celery's warm shutdown
                try:
                    worker.wait(15)
                except subprocess.TimeoutExpired:
                    worker.kill()
            os._exit(0)

        def watch_parent(parent: int):
            # `make` killed on its own leaves us orphaned: stop rather than linger.
            while not stopping.is_set():
                if os.getppid() != parent or worker.poll() is not None:
                    stop()
                time.sleep(1)

        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, stop)
        threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
        self.stdout.write(f"Serving http://{addrport}/  (API docs: /api/docs/, admin: /admin/). "
                          "Stop with Ctrl-C.")
        if settings.ACCOUNT_PAGES_ENABLED:
            self.stdout.write(f"Sign in at {settings.FRONTEND_URL}/login")
        try:
            call_command("runserver", addrport, use_reloader=False)
        except KeyboardInterrupt:
            pass
        finally:
            stop()
