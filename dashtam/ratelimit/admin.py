"""Staff see which keys are rate-limited right now (read from the cache, not the database)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

from dashtam.ratelimit.counter import parse_rate
from dashtam.ratelimit.models import LimitedKey
from dashtam.ratelimit.registry import limited_keys
from dashtam.ratelimit.services import limited_key_unblock


def _rows() -> list[dict]:
    rows = []
    user_ids = set()
    for item in limited_keys():
        rule, _, bucket = item.key.partition(":")
        kind, _, value = bucket.partition(":")
        if not value:  # a key of another shape, such as an outbound budget (provider-out:schwab)
            kind, value = "", bucket
        if kind == "user":
            user_ids.add(value)
        rows.append({
            "rule": rule, "kind": kind, "value": value, "who": value,
            "limit": item.limit, "period": item.period, "count": item.count,
            "refused": max(0, item.count - item.limit), "reset_in": item.reset_in,
            "key": item.key, "rate": f"{item.limit}/{item.period}s",
        })
    if user_ids:
        pks = get_user_model()._meta.pk
        wanted = []
        for uid in user_ids:
            try:
                wanted.append(pks.to_python(uid))
            except ValidationError:
                continue
        emails = {str(pk): email for pk, email in
                  get_user_model().objects.filter(pk__in=wanted).values_list("pk", "email")}
        for row in rows:
            if row["kind"] == "user":
                row["who"] = emails.get(row["value"], row["value"])
    return rows


@admin.register(LimitedKey)
class LimitedKeyAdmin(admin.ModelAdmin):
    """A read-only page: the keys over their limit now, with their count and time left."""

    def has_module_permission(self, request) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request, obj=None) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def can_unblock(self, request) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST":
            return self._unblock(request)
        try:
            audit_url = reverse("admin:audit_auditevent_changelist") + "?action=ratelimit.exceeded"
        except NoReverseMatch:
            audit_url = ""
        context = {
            **self.admin_site.each_context(request),
            "title": "Rate-limited keys (live)",
            "opts": self.model._meta,
            "rows": _rows(),
            "can_unblock": self.can_unblock(request),
            "audit_url": audit_url,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/dashtam_ratelimit/limited_keys.html", context)

    def _unblock(self, request):
        if not self.can_unblock(request):
            raise PermissionDenied
        key, rate = request.POST.get("key", ""), request.POST.get("rate", "")
        try:
            parse_rate(rate)
        except ValueError:
            messages.error(request, "That is not a rate-limited key.")
        else:
            if limited_key_unblock(key=key, rate=rate, actor=request.user):
                messages.success(request, f"Unblocked {key}: its next request is admitted.")
            else:
                messages.warning(request, f"{key} was not limited any more (or the cache is unreachable).")
        return HttpResponseRedirect(request.path)
