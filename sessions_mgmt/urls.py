"""Mounted at /api/v1/auth/. "others" and "all" come before the id route, which only matches UUIDs."""

from django.urls import path

from sessions_mgmt import apis

urlpatterns = [
    path("refresh", apis.RefreshApi.as_view(), name="auth-refresh"),
    path("logout", apis.LogoutApi.as_view(), name="auth-logout"),
    path("sessions", apis.SessionListApi.as_view(), name="sessions-list"),
    path("sessions/others", apis.SessionOthersApi.as_view(), name="sessions-others"),
    path("sessions/all", apis.SessionAllApi.as_view(), name="sessions-all"),
    path("sessions/<uuid:session_id>", apis.SessionDetailApi.as_view(), name="sessions-detail"),
]
