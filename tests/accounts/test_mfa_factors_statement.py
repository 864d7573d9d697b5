"""The login's second-factor lookup: one hand-written statement, the same answer as the ORM.

Every password login asks which second factors the account has (``mfa_methods_for``).
It is one statement with two EXISTS; the ORM's two ``exists()`` queries are what it
stands for, and both must answer alike on every kind of account.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.mfa import services
from accounts.mfa.models import TotpDevice
from accounts.models import User
from accounts.passkeys.models import Passkey
from tests.db_equivalence import assert_same_rows, with_orm_path

pytestmark = pytest.mark.django_db

USER_ID = uuid.UUID("0b7e3c1a-2f4d-4c6e-8a9b-0c1d2e3f4a5b")
OTHER_ID = uuid.UUID("1c8f4d2b-3a5e-4d7f-9b0c-1d2e3f4a5b6c")

CASES = {
    "none": [],
    "totp_unconfirmed": [],
    "totp": ["totp", "recovery_code"],
    "passkey": ["passkey"],
    "both": ["totp", "recovery_code", "passkey"],
    "another_users_factors": [],
}


def _build(case: str):
    def build():
        user = User.objects.create(id=USER_ID, email="factors@example.com")
        other = User.objects.create(id=OTHER_ID, email="other-factors@example.com")
        owner = other if case == "another_users_factors" else user
        if case in ("totp", "both", "totp_unconfirmed", "another_users_factors"):
            TotpDevice.objects.create(
                user=owner, secret_encrypted="sealed", key_id="k1",
                confirmed_at=None if case == "totp_unconfirmed" else timezone.now())
        if case in ("passkey", "both", "another_users_factors"):
            Passkey.objects.create(user=owner, name="key", credential_id=f"cred-{case}", public_key=b"\x01")
        return user

    return build


@pytest.mark.parametrize("case", list(CASES))
def test_the_factors_statement_answers_what_the_orm_answers(case):
    def ask(user):
        return services.mfa_methods_for(user=user)

    raw, orm = assert_same_rows(fixture=_build(case), raw=ask, orm=with_orm_path(services.FACTORS)(ask),
                                models=[User, TotpDevice, Passkey],
                                ignore={User: ["date_joined"], TotpDevice: ["id", "created_at", "confirmed_at"],
                                        Passkey: ["id", "created_at"]})
    assert raw.result == orm.result == CASES[case]


def test_a_login_asks_for_its_factors_in_one_statement():
    user = _build("both")()
    with CaptureQueriesContext(connection) as queries:
        assert services.mfa_methods_for(user=user) == ["totp", "recovery_code", "passkey"]
    assert len(queries.captured_queries) == 1, [q["sql"] for q in queries.captured_queries]
