"""A bad accounts configuration is refused at start-up, naming the variable."""

from __future__ import annotations

from accounts.checks import check_lockout_and_tokens, check_password_policy


def test_default_configuration_passes():
    assert check_password_policy() == [] and check_lockout_and_tokens() == []


def test_unknown_password_policy_is_refused(settings):
    settings.PASSWORD_POLICY = "strong"
    [error] = check_password_policy()
    assert error.msg.startswith("PASSWORD_POLICY")


def test_ip_threshold_below_the_account_threshold_is_refused(settings):
    settings.LOCKOUT_IP_FAILURE_LIMIT = 5
    assert [e.msg.split(":")[0] for e in check_lockout_and_tokens()] == ["LOCKOUT_IP_FAILURE_LIMIT"]


def test_non_positive_values_are_refused(settings):
    settings.PASSWORD_RESET_TOKEN_MINUTES = 0
    settings.LOCKOUT_COOLOFF_SECONDS = -1
    names = {e.msg.split(":")[0] for e in check_lockout_and_tokens()}
    assert names == {"PASSWORD_RESET_TOKEN_MINUTES", "LOCKOUT_COOLOFF_SECONDS"}


def test_amazon_ses_backend_needs_boto3(settings, monkeypatch):
    import builtins

    from accounts.checks import check_email_backend

    settings.EMAIL_BACKEND = "anymail.backends.amazon_ses.EmailBackend"
    real_import = builtins.__import__

    def no_boto3(name, *args, **kwargs):
        if name == "boto3":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_boto3)
    [error] = check_email_backend()
    assert error.msg.startswith("EMAIL_URL")


def test_amazon_ses_backend_is_loadable(settings):
    import pytest
    from django.core.mail import get_connection

    pytest.importorskip("boto3", reason="boto3 comes with requirements/prod.txt")

    from accounts.checks import check_email_backend

    settings.EMAIL_BACKEND = "anymail.backends.amazon_ses.EmailBackend"
    settings.ANYMAIL = {"AMAZON_SES_CLIENT_PARAMS": {"region_name": "eu-west-1"}}
    assert check_email_backend() == []
    assert get_connection() is not None
