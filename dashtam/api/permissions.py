"""Permissions shared by every app."""

from rest_framework.permissions import BasePermission


class IsStaff(BasePermission):
    """Active staff only (the staff API mirrors what the admin shows)."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)
