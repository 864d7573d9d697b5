"""Read-only admin for sessions; revocation goes through the same services as the API."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode

from audit.services import record_admin_action
from dashtam.admin import ReadOnlyAdmin
from sessions_mgmt import services
from sessions_mgmt.models import SecurityConfig, Session


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.active(now=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.ended(now=now)
        return queryset


class UserFilter(admin.SimpleListFilter):
    """Sessions of one user (?user=<id>, linked from every row); no list of all users."""

    title = "user"
    parameter_name = "user"

    def lookups(self, request, model_admin):
        from django.contrib.auth import get_user_model

        value = request.GET.get(self.parameter_name)
        if not value:
            return []
        try:
            user = get_user_model().objects.filter(pk=value).only("email").first()
        except (ValueError, ValidationError):
            user = None
        return [(value, user.email if user else value)]

    def queryset(self, request, queryset):
        if self.value():
            try:
                return queryset.filter(user_id=self.value())
            except (ValueError, ValidationError):
                return queryset.none()
        return queryset


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    list_display = ("id", "user_link", "device", "browser", "os", "ip", "location", "auth_methods", "created_at",
                    "last_used_at", "expires_at", "revoked_at", "revoke_reason")
    list_filter = (UserFilter, StatusFilter, ("created_at", admin.DateFieldListFilter))
    search_fields = ("=user__email", "=id", "=ip")
    list_select_related = ("user",)
    show_full_result_count = False
    date_hierarchy = None
    ordering = ("-created_at",)
    exclude = ("refresh_jti", "previous_refresh_jti")
    actions = ["revoke_sessions", "revoke_user_tokens"]

    @admin.display(description="user", ordering="user__email")
    def user_link(self, obj: Session):
        query = urlencode({"user": str(obj.user_id)})
        return format_html('<a href="?{}">{}</a>', query, obj.user.email)

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("sessions_mgmt.revoke_session")

    @admin.action(description="Revoke the selected sessions", permissions=["revoke"])
    def revoke_sessions(self, request, queryset):
        with transaction.atomic():
            count = sum(
                services.session_revoke(session=s, reason="admin", actor=request.user)
                for s in queryset.select_related(None).only("pk", "user_id")
            )
            record_admin_action(request, action="sessions.revoke", count=count)
        self.message_user(request, f"{count} session(s) revoked.", messages.SUCCESS)

    @admin.action(description="Revoke every token of the selected sessions' users (breach rotation)",
                  permissions=["revoke"])
    def revoke_user_tokens(self, request, queryset):
        from django.contrib.auth import get_user_model

        user_ids = set(queryset.values_list("user_id", flat=True))
        with transaction.atomic():
            for user in get_user_model().objects.filter(pk__in=user_ids):
                services.tokens_revoke_for_user(user=user, reason="admin", actor=request.user)
            record_admin_action(request, action="tokens.revoke_for_users", count=len(user_ids))
        self.message_user(request, f"Every token of {len(user_ids)} user(s) revoked.", messages.SUCCESS)


@admin.register(SecurityConfig)
class SecurityConfigAdmin(ReadOnlyAdmin):
    list_display = ("id", "min_token_version", "updated_at")
    actions = ["revoke_all_tokens"]

    def has_superuser_permission(self, request) -> bool:
        # Logs out everyone, staff included: no permission short of superuser grants it.
        return bool(request.user.is_active and request.user.is_superuser)

    @admin.action(description="Revoke every token of every user (breach rotation)", permissions=["superuser"])
    def revoke_all_tokens(self, request, queryset):
        with transaction.atomic():
            version = services.tokens_revoke_all(reason="admin", actor=request.user)
            record_admin_action(request, action="tokens.revoke_all", count=1, min_version=version)
        self.message_user(request, f"Every token revoked; global minimum version is now {version}.",
                          messages.WARNING)

    def changelist_view(self, request, extra_context=None):
        SecurityConfig.objects.get_or_create(pk=1)
        return super().changelist_view(request, extra_context)
