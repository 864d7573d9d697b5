"""Print a new FIELD_ENCRYPTION_KEYS entry: ``kid:base64url(32 random bytes)``."""

import base64
import secrets

from django.core.management.base import BaseCommand
from django.utils import timezone


class Command(BaseCommand):
    help = "Print a new AES-256-GCM key entry for FIELD_ENCRYPTION_KEYS (put it first in the list)."

    def add_arguments(self, parser):
        parser.add_argument("--kid", help="key id (default: k<YYYYMMDDHHMMSS>)")

    def handle(self, *args, kid=None, **options):
        kid = kid or timezone.now().strftime("k%Y%m%d%H%M%S")
        key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        self.stdout.write(f"{kid}:{key}")
