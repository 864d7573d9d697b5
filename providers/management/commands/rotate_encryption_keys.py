"""Re-encrypt every stored provider token (and TOTP seed) under the newest key of FIELD_ENCRYPTION_KEYS.

Online and resumable: each row is re-sealed in its own short transaction under a
row lock, rows already on the newest key are skipped, so the command can be
interrupted and run again at any time while the app serves traffic. Once it
reports nothing left, the old key can be removed from FIELD_ENCRYPTION_KEYS.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.services import record
from dashtam import crypto
from providers.models import ProviderToken
from providers.services import oauth_state_reencrypt, token_reencrypt


class Command(BaseCommand):
    help = "Re-encrypt provider tokens with the newest key (batches, resumable, no downtime)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--dry-run", action="store_true", help="only count what would be re-encrypted")

    def handle(self, *args, batch_size: int = 500, dry_run: bool = False, **options):
        try:
            newest = crypto.current_key_id()
        except crypto.DecryptionError as exc:
            raise CommandError(str(exc)) from None
        pending = ProviderToken.objects.exclude(key_id=newest)
        total = pending.count()
        self.stdout.write(f"{total} token(s) to re-encrypt under key {newest!r}")
        if dry_run:
            return
        if not total:
            self._rotate_pending_states(newest)
            self._rotate_totp_seeds()
            return
        done = failed = 0
        last_pk = None
        while True:
            qs = pending.order_by("pk")
            if last_pk is not None:
                qs = qs.filter(pk__gt=last_pk)
            batch = list(qs.values_list("pk", flat=True)[:batch_size])
            if not batch:
                break
            for pk in batch:
                try:
                    done += token_reencrypt(token_id=pk)
                except crypto.DecryptionError as exc:
                    failed += 1
                    self.stderr.write(f"token {pk}: {exc}")
            last_pk = batch[-1]
            width = 30
            filled = int(width * min(1.0, (done + failed) / total))
            self.stdout.write(f"[{'#' * filled}{'.' * (width - filled)}] {done + failed}/{total}")
        self._rotate_pending_states(newest)
        self._rotate_totp_seeds()
        with transaction.atomic():
            record(action="provider.keys.rotated", outcome="success" if not failed else "failure",
                   target_type="providers.providertoken", target_id="*",
                   extra={"key_id": newest, "reencrypted": done, "failed": failed})
        self.stdout.write(self.style.SUCCESS(f"re-encrypted {done} token(s); {failed} failed"))
        if failed:
            raise CommandError(f"{failed} token(s) could not be decrypted with any key in FIELD_ENCRYPTION_KEYS")

    def _rotate_totp_seeds(self) -> None:
        """Values other apps seal with the same ring (the second-factor seeds of accounts/mfa)
        are re-sealed by the re-sealers those apps register with ``dashtam.crypto``."""
        for label, reseal in crypto.resealers().items():
            done, failed = reseal(stderr=self.stderr)
            self.stdout.write(f"re-encrypted {done} {label}(s); {failed} failed")
            if failed:
                raise CommandError(
                    f"{failed} {label}(s) could not be decrypted with any key in FIELD_ENCRYPTION_KEYS")

    def _rotate_pending_states(self, newest: str) -> int:
        """Re-seal the PKCE verifiers of authorizations still in flight, so the old key can
        be dropped right away without breaking a user who is on the provider's consent page."""
        from django.utils import timezone

        from providers.models import OAuthState

        count = 0
        states = (OAuthState.objects.filter(used_at__isnull=True, expires_at__gt=timezone.now())
                  .exclude(code_verifier_encrypted="").exclude(code_verifier_encrypted__startswith=f"{newest}."))
        for pk in states.values_list("pk", flat=True):
            count += oauth_state_reencrypt(state_id=pk)
        if count:
            self.stdout.write(f"re-encrypted {count} pending authorization(s)")
        return count
