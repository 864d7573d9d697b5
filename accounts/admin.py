"""Admin for users: investigate, unlock, send a reset email. Staff never set passwords (ASVS 6.4.6)."""

from __future__ import annotations

from axes.helpers import get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django import forms
from django.contrib import admin, messages
from django.db.models import IntegerField, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.html import format_html_join

from accounts import services
from accounts.email_address import canonical_email
from accounts.lockout import lockout_state
from accounts.mfa.admin import UserMfaAdminMixin
from accounts.models import User
from accounts.names import name_problems
from audit.services import record_admin_action


def _recent_failures():
    since = timezone.now() - get_cool_off()
    per_user = (
        AccessAttempt.objects.filter(username=OuterRef("email"), attempt_time__gte=since)
        .values("username").annotate(total=Sum("failures_since_start")).values("total")
    )
    return Coalesce(Subquery(per_user, output_field=IntegerField()), 0)


class VerifiedFilter(admin.SimpleListFilter):
    title = "email verified"
    parameter_name = "verified"

    def lookups(self, request, model_admin):
        return [("yes", "Verified"), ("no", "Not verified")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(email_verified_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(email_verified_at__isnull=True)
        return queryset


class LockedFilter(admin.SimpleListFilter):
    title = "login lock"
    parameter_name = "locked"

    def lookups(self, request, model_admin):
        return [("yes", "Locked"), ("failures", "Recent failures")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(recent_failures__gte=get_failure_limit(None, None))
        if self.value() == "failures":
            return queryset.filter(recent_failures__gt=0)
        return queryset


class UserForm(forms.ModelForm):
    """Names set by staff follow the API's rule: plain single-line text, no link (accounts/names.py)."""

    def _clean_name(self, field: str) -> str:
        value = (self.cleaned_data.get(field) or "").strip()
        problems = name_problems(value)
        if problems:
            raise forms.ValidationError(problems)
        return value

    def clean_first_name(self):
        return self._clean_name("first_name")

    def clean_last_name(self):
        return self._clean_name("last_name")


@admin.register(User)
class UserAdmin(UserMfaAdminMixin, admin.ModelAdmin):
    form = UserForm
    list_display = ("email", "first_name", "last_name", "verified", "is_active", "is_staff",
                    "locked", "mfa_enabled", "date_joined", "last_login")
    list_filter = (VerifiedFilter, LockedFilter, "is_active", "is_staff", "is_superuser")
    search_fields = ("email", "first_name", "last_name")
    ordering = ("-date_joined",)
    show_full_result_count = False
    actions = ["unlock_accounts", "send_password_reset", "deactivate_accounts", "reset_mfa"]
    # No password field and no password form: staff send a reset email instead.
    fieldsets = (
        (None, {"fields": ("id", "email", "first_name", "last_name")}),
        ("Status", {"fields": ("email_verified_at", "is_active", "deactivated_at", "lock_status",
                               "login_attempts", "mfa_status")}),
        ("Permissions", {"fields": ("is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("date_joined", "last_login")}),
    )
    readonly_fields = ("id", "email", "email_verified_at", "is_active", "deactivated_at", "date_joined",
                       "last_login", "lock_status", "login_attempts", "mfa_status")
    filter_horizontal = ("groups", "user_permissions")

    # Only a superuser may grant or take away privileges; other staff see them read-only.
    PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += self.PRIVILEGE_FIELDS
        return fields

    def has_add_permission(self, request):
        # Accounts are created by registration (or createsuperuser), never with a staff-set password.
        return False

    def has_delete_permission(self, request, obj=None):
        # Deactivate instead: the audit trail and provider revocation must run.
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(recent_failures=_recent_failures())

    def get_search_results(self, request, queryset, search_term):
        # An address (anything with an @) is searched in its canonical form, the form every
        # address is stored in: "USER@Example.com" and "uſer@example.com" find user@example.com.
        term = search_term.strip()
        if "@" in term:
            return queryset.filter(email__contains=canonical_email(term)), False
        return super().get_search_results(request, queryset, search_term)

    # Each action needs its own permission (allowed_permissions): "view" alone runs none of them.
    def has_unlock_permission(self, request) -> bool:
        return request.user.has_perm("accounts.unlock_user")

    def has_send_password_reset_permission(self, request) -> bool:
        return request.user.has_perm("accounts.send_password_reset")

    def has_deactivate_permission(self, request) -> bool:
        return request.user.has_perm("accounts.deactivate_user")

    def save_related(self, request, form, formsets, change):
        # Runs after save_model, inside the admin's transaction: one audit row names every
        # field a staff member changed (permissions and groups included), never their values.
        super().save_related(request, form, formsets, change)
        if change and form.changed_data:
            record_admin_action(request, action="user.change", target=form.instance, count=1,
                                fields=sorted(form.changed_data))

    @admin.display(boolean=True, description="verified", ordering="email_verified_at")
    def verified(self, obj):
        return obj.is_verified

    @admin.display(boolean=True, description="locked")
    def locked(self, obj):
        return getattr(obj, "recent_failures", 0) >= get_failure_limit(None, None)

    @admin.display(description="lock status")
    def lock_status(self, obj):
        state = lockout_state(username=obj.email, ip=None)
        if state.account_locked:
            return f"Locked for {state.retry_after} more seconds ({state.account_failures} recent failures)"
        return f"Not locked ({state.account_failures} recent failures)"

    @admin.display(description="login attempts (django-axes)")
    def login_attempts(self, obj):
        rows = AccessAttempt.objects.filter(username=obj.email).order_by("-attempt_time")[:20]
        if not rows:
            return "None"
        return format_html_join(
            "", "<div>{} &middot; {} failure(s) &middot; {} &middot; {}</div>",
            ((a.attempt_time.strftime("%Y-%m-%d %H:%M:%S UTC"), a.failures_since_start, a.ip_address,
              a.user_agent[:80]) for a in rows),
        )

    @admin.action(description="Unlock selected accounts (same as manage.py axes_reset_username)",
                  permissions=["unlock"])
    def unlock_accounts(self, request, queryset):
        removed = sum(services.lockout_clear(email=u.email, actor=request.user) for u in queryset)
        self.message_user(request, f"Removed {removed} failed login attempt(s).", messages.SUCCESS)

    @admin.action(description="Send a password reset email", permissions=["send_password_reset"])
    def send_password_reset(self, request, queryset):
        sent = sum(services.password_reset_request(email=u.email, actor=request.user) for u in queryset)
        self.message_user(request, f"Sent {sent} password reset email(s).", messages.SUCCESS)

    @admin.action(description="Deactivate selected accounts (ends sessions, revokes provider connections)",
                  permissions=["deactivate"])
    def deactivate_accounts(self, request, queryset):
        if not request.user.is_superuser and queryset.filter(is_superuser=True).exists():
            # Only a superuser may deactivate a superuser; nothing of the selection is done.
            self.message_user(request, "Only a superuser can deactivate a superuser: nothing was changed.",
                              messages.ERROR)
            return
        done = sum(services.user_deactivate(user=u, reason="staff", actor=request.user) for u in queryset)
        self.message_user(request, f"Deactivated {done} account(s).", messages.SUCCESS)


# --- django-axes' own admin: read-only ------------------------------------------------------
# Deleting an attempt row unlocks an account with no audit row, and axes' "clean up" action
# declares no permission. Locks end through the audited unlock action above (or by expiry);
# staff with axes' view permissions can still read the attempts.
def _axes_read_only() -> None:
    import axes.admin as axes_admin  # registers axes' admins first, whatever the app order
    from axes.models import AccessFailureLog, AccessLog

    for model, base in ((AccessAttempt, axes_admin.AccessAttemptAdmin), (AccessLog, axes_admin.AccessLogAdmin),
                        (AccessFailureLog, axes_admin.AccessFailureLogAdmin)):
        if not admin.site.is_registered(model):
            continue  # AXES_ENABLE_ADMIN = False
        admin.site.unregister(model)
        read_only = type(base.__name__, (base,), {
            "__module__": __name__,
            "actions": (),
            "has_change_permission": lambda self, request, obj=None: False,
            "has_delete_permission": lambda self, request, obj=None: False,
        })
        admin.site.register(model, read_only)


_axes_read_only()
