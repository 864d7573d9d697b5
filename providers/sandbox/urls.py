"""The sandbox provider, mounted at /sandbox/ (same paths as Schwab's API)."""

from django.urls import path

from providers.sandbox import views

urlpatterns = [
    path("oauth-result", views.oauth_result, name="sandbox-oauth-result"),
    path("v1/oauth/authorize", views.authorize, name="sandbox-authorize"),
    path("v1/oauth/token", views.token, name="sandbox-token"),
    path("trader/v1/accounts/accountNumbers", views.account_numbers, name="sandbox-account-numbers"),
    path("trader/v1/accounts", views.accounts, name="sandbox-accounts"),
    path("trader/v1/accounts/<str:account_hash>/transactions", views.transactions,
         name="sandbox-transactions"),
]
