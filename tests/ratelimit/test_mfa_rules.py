"""The second-factor step's own rules: per mfa_token and per client IP (dashtam/ratelimit/rule_table.py)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.mfa.services import totp_demo_device_ensure
from tests.accounts.mfa_helpers import code_for, login_mfa, mfa_token_for
from tests.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rules(settings):
    from dashtam.ratelimit.rule_table import DEFAULT_RATE_RULES

    def apply(**rates):
        table = {name: dict(rule) for name, rule in DEFAULT_RATE_RULES.items()}
        for name, rate in rates.items():
            table[name]["rate"] = rate
        settings.RATE_LIMIT_RULES = table

    settings.RATELIMIT_ENABLE = True
    return apply


def _wrong(secret: str) -> str:
    return "000000" if code_for(secret) != "000000" else "111111"


def test_each_mfa_token_has_its_own_budget(rules):
    rules(mfa_login_token="3/m", mfa_login_ip="100/m")
    user = UserFactory(password=PASSWORD)
    secret = totp_demo_device_ensure(user=user)
    client = APIClient()
    token = mfa_token_for(client, user.email, PASSWORD)
    for _ in range(3):
        assert login_mfa(client, token, _wrong(secret)).status_code == 401
    refused = login_mfa(client, token, code_for(secret))
    assert refused.status_code == 429 and refused.json()["code"] == "RATE_LIMITED"
    assert int(refused["Retry-After"]) > 0
    # Another login step of the same client is counted apart.
    other = mfa_token_for(client, user.email, PASSWORD)
    assert login_mfa(client, other, code_for(secret)).status_code == 200


def test_one_client_ip_has_one_budget_across_tokens(rules):
    rules(mfa_login_token="100/m", mfa_login_ip="4/m")
    user = UserFactory(password=PASSWORD)
    secret = totp_demo_device_ensure(user=user)
    client = APIClient()
    for _ in range(4):
        token = mfa_token_for(client, user.email, PASSWORD)
        assert login_mfa(client, token, _wrong(secret)).status_code == 401
    token = mfa_token_for(client, user.email, PASSWORD)
    refused = login_mfa(client, token, code_for(secret))
    assert refused.status_code == 429 and refused.json()["code"] == "RATE_LIMITED"
