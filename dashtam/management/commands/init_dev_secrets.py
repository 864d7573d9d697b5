"""manage.py init_dev_secrets: the development and test secrets of this checkout."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from dashtam import dev_secrets


class Command(BaseCommand):
    help = ("Generate this checkout's development and test secrets (DJANGO_SECRET_KEY, "
            f"FIELD_ENCRYPTION_KEYS) into {dev_secrets.FILENAME} (git-ignored, mode 0600) unless "
            "it exists; an existing file is kept. make run, make test and CI run it first. "
            "Production never reads the file: its secrets come from the environment.")
    # It runs before the secrets exist: the checks would only report what it is about to fix.
    requires_system_checks: list = []

    def handle(self, *args, **options):
        path = dev_secrets.path_for(settings.BASE_DIR)
        if dev_secrets.ensure(settings.BASE_DIR):
            self.stdout.write(f"Wrote development secrets to {path.name} (git-ignored, mode 0600).")
        elif options["verbosity"] > 1:
            self.stdout.write(f"{path.name} exists: kept.")
        if settings.IS_PRODUCTION and options["verbosity"] > 0:
            self.stdout.write("DJANGO_ENV is production, which never reads this file: set the "
                              "secrets in the environment.")
