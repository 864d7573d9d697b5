"""Mounted at /account/ (ACCOUNT_PAGES_ENABLED). FRONTEND_URL points here in development,
so these paths are the ones the emails and the OAuth callback link to."""

from django.urls import path

from account_pages import views

urlpatterns = [
    path("", views.index, name="account-index"),
    path("login", views.page("login"), name="account-login"),
    path("register", views.page("register"), name="account-register"),
    path("forgot-password", views.page("forgot-password"), name="account-forgot-password"),
    path("verify-email", views.page("verify-email"), name="account-verify-email"),
    path("reset-password", views.page("reset-password"), name="account-reset-password"),
    path("magic-link", views.page("magic-link"), name="account-magic-link"),
    path("unlock", views.page("unlock"), name="account-unlock"),
    path("security", views.page("security"), name="account-security"),
    path("settings/sessions", views.sessions_alias, name="account-sessions-alias"),
    path("connections", views.page("connections"), name="account-connections"),
    path("connections/callback", views.page("connections-callback"), name="account-connections-callback"),
    path("connections/<uuid:connection_id>", views.connection_alias, name="account-connection-alias"),
]
