"""Breach rotation: every token issued before now stops working, for one user or for everyone."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from dashtam import context
from dashtam.email_address import canonical_email
from sessions_mgmt.services import tokens_revoke_all, tokens_revoke_for_user


class Command(BaseCommand):
    help = (
        "Raise the minimum token version of one user (--user EMAIL) or of everyone (--all). "
        "Every access and refresh token issued before stops working at once, and the sessions end."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--user", metavar="EMAIL", help="Revoke every token of this user.")
        target.add_argument("--all", action="store_true", help="Revoke every token of every user.")
        parser.add_argument("--reason", required=True, help="Why (kept in the audit trail).")

    def handle(self, *args, **options):
        reason = (options["reason"] or "").strip()
        if not reason:
            raise CommandError("--reason must not be empty.")
        token = context.set_context(context.RequestContext(request_id=context.new_request_id(), origin="command"))
        try:
            if options["all"]:
                version = tokens_revoke_all(reason=reason)
                self.stdout.write(self.style.SUCCESS(
                    f"Every token of every user is revoked (global minimum token version {version})."
                ))
                return
            # The user model stores addresses in their one canonical form: an exact match.
            email = canonical_email(options["user"])
            user = get_user_model().objects.filter(email=email).first()
            if user is None:
                raise CommandError(f"No user with the email {email}.")
            version = tokens_revoke_for_user(user=user, reason=reason)
            self.stdout.write(self.style.SUCCESS(
                f"Every token of {email} is revoked (minimum token version {version})."
            ))
        finally:
            context.reset(token)
