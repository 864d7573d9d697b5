"""Mounted at /api/v1/auth/. The names are what the rate-limit rules match."""

from django.urls import include, path

from accounts import apis

urlpatterns = [
    # The hot routes first (dashtam/urls.py says why).
    path("me", apis.MeApi.as_view(), name="auth-me"),
    path("login", apis.LoginApi.as_view(), name="auth-login"),
    path("register", apis.RegisterApi.as_view(), name="auth-register"),
    path("verify-email", apis.VerifyEmailApi.as_view(), name="auth-verify-email"),
    path("resend-verification", apis.ResendVerificationApi.as_view(), name="auth-resend-verification"),
    path("unlock", apis.UnlockApi.as_view(), name="auth-unlock"),
    path("request-password-reset", apis.RequestPasswordResetApi.as_view(), name="auth-request-password-reset"),
    path("reset-password", apis.ResetPasswordApi.as_view(), name="auth-reset-password"),
    path("magic-link", apis.MagicLinkRequestApi.as_view(), name="auth-magic-link"),
    path("magic-link/verify", apis.MagicLinkVerifyApi.as_view(), name="auth-magic-link-verify"),
    path("change-password", apis.ChangePasswordApi.as_view(), name="auth-change-password"),
    path("", include("accounts.mfa.urls")),  # second factors: login/mfa, mfa, mfa/totp, ...
    path("", include("accounts.passkeys.urls")),  # passkeys (WebAuthn)
]
