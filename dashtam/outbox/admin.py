"""Staff see what waits in the outbox (never the arguments: they may hold one-time links)."""

from __future__ import annotations

from django.contrib import admin

from dashtam.outbox.models import OutboxTask


@admin.register(OutboxTask)
class OutboxTaskAdmin(admin.ModelAdmin):
    list_display = ("id", "task_name", "created_at", "attempts", "next_attempt_at", "last_error")
    fields = list_display
    readonly_fields = list_display
    list_filter = ("task_name",)
    show_full_result_count = False
    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
