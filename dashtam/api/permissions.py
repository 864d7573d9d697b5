"""Permissions shared by every app."""

from rest_framework.permissions import BasePermission


class IsStaff(BasePermission):
    """Active staff only (the staff API mirrors what the admin shows)."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)


def staff_with(perm: str) -> type[BasePermission]:
    """Active staff holding the Django permission ``perm`` ("app_label.codename"), as the admin asks.

    ``is_staff`` alone is not enough: the staff API grants what the same page of the admin grants.
    """

    class StaffWithPermission(IsStaff):
        def has_permission(self, request, view):
            return super().has_permission(request, view) and request.user.has_perm(perm)

    StaffWithPermission.__name__ = StaffWithPermission.__qualname__ = f"StaffWith_{perm.replace('.', '_')}"
    return StaffWithPermission
