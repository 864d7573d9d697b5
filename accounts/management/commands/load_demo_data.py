"""Demo data for `make run`: a verified demo user and a staff user with an authenticator. Idempotent."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.email_address import canonical_email
from accounts.mfa.services import totp_demo_device_ensure
from accounts.models import User
from accounts.services import lockout_clear

DEMO_USERS = (
    # email, password, staff
    ("demo@dashtam.local", "Demo-Passw0rd!", False),
    ("staff@dashtam.local", "Staff-Passw0rd!", True),
)


class Command(BaseCommand):
    help = "Create the demo user and the staff user (development only); print their credentials."

    def handle(self, *args, **options):
        if settings.IS_PRODUCTION:
            raise CommandError("Demo data is never loaded in production.")
        for email, password, staff in DEMO_USERS:
            user, created = User.objects.get_or_create(
                email=canonical_email(email),
                defaults={"email_verified_at": timezone.now(), "is_staff": staff, "is_superuser": staff,
                          "first_name": "Demo" if not staff else "Staff"},
            )
            if created:
                user.set_password(password)
                user.save(update_fields=["password"])
            # A fresh `make run` always lets the demo users in, even after a lockout.
            lockout_clear(email=email)
            if staff:
                staff_secret = totp_demo_device_ensure(user=user)
        self.stdout.write(self.style.SUCCESS("Demo data ready:"))
        self.stdout.write("  API user:   demo@dashtam.local / Demo-Passw0rd!   (POST /api/v1/auth/login)")
        self.stdout.write("  Staff user: staff@dashtam.local / Staff-Passw0rd!  (/admin/)")
        self.stdout.write(f"  Staff TOTP secret: {staff_secret}  (add it to any authenticator app; the admin "
                          "asks for its code after the password)")
