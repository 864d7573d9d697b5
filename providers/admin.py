"""Admin for staff who investigate connections: status, expiry, failures, circuit state.

Read-only, and never a token: the token table is not registered and the
encrypted columns are not shown. Actions call the same services as the API.
"""

from __future__ import annotations

import time

from django.contrib import admin, messages
from django.db import transaction

from audit.services import record_admin_action
from dashtam.admin import ReadOnlyAdmin
from providers import breaker, selectors, services
from providers.models import FinancialAccount, ProviderConnection

_STATES: dict = {"at": -10.0, "value": {}}


def _circuit_states() -> dict:
    """The breakers' states, read once per second at most (not once per row of a page)."""
    now = time.monotonic()
    if now - _STATES["at"] > 1.0:
        _STATES.update(at=now, value=selectors.circuit_breaker_states())
    return _STATES["value"]


@admin.register(ProviderConnection)
class ProviderConnectionAdmin(ReadOnlyAdmin):
    list_display = ("id", "user_email", "provider_key", "alias", "status", "token_expires_at",
                    "refresh_expires_at", "consecutive_failures", "last_error_code", "circuit",
                    "last_refreshed_at", "last_sync_at", "created_at")
    list_filter = ("status", "provider_key")
    search_fields = ("=user__email", "=id", "alias")
    list_select_related = ("user", "token")
    show_full_result_count = False
    ordering = ("-created_at",)
    fields = ("id", "user", "provider_key", "alias", "status", "connected_at", "last_refreshed_at", "last_sync_at",
              "consecutive_failures", "last_error_code", "last_error_message", "min_token_version",
              "token_summary", "circuit", "created_at", "updated_at")
    readonly_fields = fields
    actions = ["force_refresh", "rotate_tokens", "revoke"]


    @admin.display(description="user", ordering="user__email")
    def user_email(self, obj):
        return obj.user.email

    def _token(self, obj):
        try:
            return obj.token
        except ProviderConnection.token.RelatedObjectDoesNotExist:
            return None

    @admin.display(description="access expires")
    def token_expires_at(self, obj):
        token = self._token(obj)
        return token.expires_at if token else None

    @admin.display(description="refresh expires")
    def refresh_expires_at(self, obj):
        token = self._token(obj)
        return token.refresh_expires_at if token else None

    @admin.display(description="token")
    def token_summary(self, obj):
        token = self._token(obj)
        if token is None:
            return "no token stored"
        return (f"version {token.token_version}, key {token.key_id}, refreshed {token.refresh_count} time(s), "
                f"scope {token.scope or '-'}")

    @admin.display(description="circuit")
    def circuit(self, obj):
        state = _circuit_states().get(obj.provider_key) or breaker.state(obj.provider_key).as_dict()
        return state["state"] + (f" ({state['retry_after']}s)" if state["retry_after"] else "")

    # Each action needs its own permission (allowed_permissions): "view" alone runs none of them.
    def has_refresh_permission(self, request) -> bool:
        return request.user.has_perm("providers.refresh_connection")

    def has_rotate_tokens_permission(self, request) -> bool:
        return request.user.has_perm("providers.rotate_connection_tokens")

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("providers.revoke_connection")

    @admin.action(description="Force a token refresh now", permissions=["refresh"])
    def force_refresh(self, request, queryset):
        results = [services.token_refresh(connection_id=c.pk, force=True) for c in queryset.select_related(None).only("pk")]
        ok = sum(r.status == "refreshed" for r in results)
        with transaction.atomic():
            record_admin_action(request, action="providers.force_refresh", count=len(results))
        self.message_user(request, f"{ok} of {len(results)} connection(s) refreshed.",
                          messages.SUCCESS if ok == len(results) else messages.WARNING)

    @admin.action(description="Breach rotation: replace the tokens of the selected connections' users",
                  permissions=["rotate_tokens"])
    def rotate_tokens(self, request, queryset):
        from django.contrib.auth import get_user_model

        user_ids = set(queryset.values_list("user_id", flat=True))
        with transaction.atomic():
            count = sum(services.provider_tokens_rotate_for_user(user=user, reason="admin")
                        for user in get_user_model().objects.filter(pk__in=user_ids))
            record_admin_action(request, action="providers.rotate_tokens", count=count)
        self.message_user(request, f"{count} connection(s) will get new tokens (or need re-authorization).",
                          messages.SUCCESS)

    @admin.action(description="Revoke (destroy the tokens; the user must reconnect)", permissions=["revoke"])
    def revoke(self, request, queryset):
        with transaction.atomic():
            count = sum(services.connection_revoke(connection=c, reason="admin", actor=request.user)
                        for c in queryset)
            record_admin_action(request, action="providers.revoke", count=count)
        self.message_user(request, f"{count} connection(s) revoked.", messages.SUCCESS)


@admin.register(FinancialAccount)
class FinancialAccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "connection", "account_number_masked", "account_type", "total_value", "synced_at")
    list_select_related = ("connection",)
    show_full_result_count = False
    search_fields = ("=connection__user__email", "=id")
    exclude = ("provider_account_hash",)

