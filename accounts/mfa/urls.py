"""Second-factor routes, mounted with the rest of accounts at /api/v1/auth/."""

from django.urls import path

from accounts.mfa import apis

urlpatterns = [
    path("login/mfa", apis.MfaLoginApi.as_view(), name="auth-login-mfa"),
    path("mfa", apis.MfaStatusApi.as_view(), name="auth-mfa"),
    path("mfa/totp", apis.TotpApi.as_view(), name="auth-mfa-totp"),
    path("mfa/totp/confirm", apis.TotpConfirmApi.as_view(), name="auth-mfa-totp-confirm"),
    path("mfa/recovery-codes", apis.RecoveryCodesApi.as_view(), name="auth-mfa-recovery-codes"),
]
