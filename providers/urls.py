"""Mounted at /api/v1/. Names are what the rate-limit rules match."""

from django.urls import path

from providers import apis

urlpatterns = [
    path("provider-types", apis.ProviderTypesApi.as_view(), name="provider-types"),
    path("providers", apis.ConnectionListApi.as_view(), name="providers-list"),
    path("providers/oauth/<slug:provider_key>/callback", apis.OAuthCallbackApi.as_view(),
         name="providers-oauth-callback"),
    path("providers/oauth/<slug:provider_key>/complete", apis.OAuthCompleteApi.as_view(),
         name="providers-oauth-complete"),
    path("providers/<uuid:connection_id>", apis.ConnectionDetailApi.as_view(), name="providers-detail"),
    path("providers/<uuid:connection_id>/authorization", apis.AuthorizationApi.as_view(),
         name="providers-authorization"),
    path("providers/<uuid:connection_id>/token-refresh", apis.TokenRefreshApi.as_view(),
         name="providers-token-refresh"),
    path("providers/<uuid:connection_id>/sync", apis.SyncApi.as_view(), name="providers-sync"),
    path("accounts", apis.AccountListApi.as_view(), name="accounts-list"),
    path("accounts/<uuid:account_id>", apis.AccountDetailApi.as_view(), name="accounts-detail"),
    path("accounts/<uuid:account_id>/transactions", apis.AccountTransactionsApi.as_view(),
         name="accounts-transactions"),
]
