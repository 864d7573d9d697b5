"""Passkeys in the admin: staff see who has which passkey and when it was used. Read-only:
users add, rename and delete their own passkeys (audited and emailed); a superuser's MFA
reset removes them all."""

from __future__ import annotations

from django.contrib import admin

from accounts.passkeys.models import Passkey


@admin.register(Passkey)
class PasskeyAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "created_at", "last_used_at", "backup_eligible", "backed_up")
    list_select_related = ("user",)
    search_fields = ("user__email", "name")
    list_filter = ("backed_up",)
    ordering = ("-created_at",)
    show_full_result_count = False
    # The key material stays out of the page (not secret, but of no use to staff).
    fields = ("id", "user", "name", "aaguid", "transports", "sign_count", "backup_eligible", "backed_up",
              "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
