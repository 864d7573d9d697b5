"""Mounted at /api/v1/auth/ (included by accounts/urls.py). Names are what the rate-limit rules match."""

from django.urls import path

from accounts.passkeys import apis

urlpatterns = [
    path("passkeys", apis.PasskeyListApi.as_view(), name="auth-passkeys"),
    path("passkeys/registration/options", apis.RegistrationOptionsApi.as_view(),
         name="auth-passkeys-registration-options"),
    path("passkeys/registration", apis.RegistrationApi.as_view(), name="auth-passkeys-registration"),
    path("passkeys/authentication/options", apis.AuthenticationOptionsApi.as_view(),
         name="auth-passkeys-authentication-options"),
    path("passkeys/authentication", apis.AuthenticationApi.as_view(), name="auth-passkeys-authentication"),
    path("passkeys/<uuid:passkey_id>", apis.PasskeyDetailApi.as_view(), name="auth-passkey"),
]
