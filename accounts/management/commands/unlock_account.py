"""Unlock an address: what the admin's "Unlock selected accounts" action does, from a shell."""

from django.core.management.base import BaseCommand, CommandError

from accounts.email_address import canonical_email
from accounts.services import lockout_clear
from dashtam import context


class Command(BaseCommand):
    help = ("Delete an address' failed login attempts (ends its lock), audited as auth.lockout.cleared. "
            "The address may be typed in any spelling: it is looked up in its canonical form.")

    def add_arguments(self, parser):
        parser.add_argument("email")

    def handle(self, *args, **options):
        email = canonical_email(options["email"])
        if not email:
            raise CommandError("Give an email address.")
        token = context.set_context(context.RequestContext(request_id=context.new_request_id(), origin="command"))
        try:
            removed = lockout_clear(email=email)
        finally:
            context.reset(token)
        self.stdout.write(self.style.SUCCESS(f"{email}: removed {removed} failed login attempt(s)."))
