"""The user admin's second-factor pieces: the MFA status (never a seed or a code) and the
superuser's reset action. Mixed into ``accounts.admin.UserAdmin``."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef

from accounts.mfa import services
from accounts.mfa.admin_login import admin_login
from accounts.mfa.models import RecoveryCode, TotpDevice

# The admin site's own login/ route (still "admin:login") serves the password step that
# leads to the code step (accounts/mfa/admin_login.py) instead of logging in at once.
admin.site.login = admin_login


class UserMfaAdminMixin:
    def get_queryset(self, request):
        confirmed = TotpDevice.objects.filter(user_id=OuterRef("pk"), confirmed_at__isnull=False)
        return super().get_queryset(request).annotate(mfa_on=Exists(confirmed))

    @admin.display(boolean=True, description="MFA")
    def mfa_enabled(self, obj):
        return getattr(obj, "mfa_on", False)

    @admin.display(description="two-step verification")
    def mfa_status(self, obj):
        device = TotpDevice.objects.filter(user_id=obj.pk, confirmed_at__isnull=False).first()
        if device is None:
            return "Off"
        left = RecoveryCode.objects.filter(user_id=obj.pk, used_at__isnull=True).count()
        used = device.last_used_at.strftime("%Y-%m-%d %H:%M UTC") if device.last_used_at else "never"
        return (f"On since {device.confirmed_at:%Y-%m-%d %H:%M UTC} (authenticator app, last used {used}); "
                f"{left} recovery code(s) left")

    def has_mfa_reset_permission(self, request, obj=None):
        # Removing someone's second factor is an account takeover aid: superusers only.
        return request.user.is_active and request.user.is_superuser

    @admin.action(description="Reset two-step verification (the user is emailed)",
                  permissions=["mfa_reset"])
    def reset_mfa(self, request, queryset):
        done = sum(services.mfa_reset(user=u, actor=request.user) for u in queryset)
        self.message_user(request, f"Two-step verification reset for {done} user(s).", messages.SUCCESS)
