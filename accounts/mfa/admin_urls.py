"""The admin's second-factor step, included by the project's URL map under ``admin/mfa/``."""

from django.urls import path

from accounts.mfa.admin_login import admin_mfa_step

urlpatterns = [
    path("", admin_mfa_step, name="admin-mfa"),
]
