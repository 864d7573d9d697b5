"""The sessions' hand-written SQL leaves the rows its ORM path leaves (tests/db_equivalence.py)."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from dashtam.errors import DomainError
from sessions_mgmt import services, tokens
from sessions_mgmt.devices import describe
from sessions_mgmt.models import SecurityConfig, Session, global_min_version
from tests.db_equivalence import assert_same_rows, with_orm_path

pytestmark = pytest.mark.django_db

USER_ID = uuid.UUID("6f1c0c2e-4c1b-4f7e-9d0a-1b2c3d4e5f60")
SESSION_ID = uuid.UUID("0a7e3b52-8c11-4d7b-a3c5-2f9e8d7c6b5a")
OLD_JTI, PREVIOUS_JTI = "presented-jti", "previous-jti"
JOINED = timezone.now()
AUDIT_VOLATILE = {AuditEvent: ["id", "created_at", "row_hash"]}  # a sequence, and a clock the test cannot pin


@pytest.fixture
def pinned(monkeypatch):
    """A fixed clock and predictable jtis, so that both runs write the very same values."""
    now = timezone.now().replace(microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: now)
    counter = {"n": itertools.count(1)}
    monkeypatch.setattr(tokens, "new_jti", lambda: f"jti-{next(counter['n'])}")
    return now, counter


def _refresh_fixture(pinned, settings, case: str):
    now, counter = pinned

    def build() -> str:
        user = User.objects.create(id=USER_ID, email="rows@example.com", is_active=case != "inactive", date_joined=now,
                                   min_token_version=2 if case == "user_version" else 1)
        if case == "global_version":
            SecurityConfig.objects.create(pk=1, min_token_version=2)
        created = now - timedelta(hours=1)
        session = Session.objects.create(
            id=SESSION_ID, user=user, created_at=created, last_used_at=created,
            expires_at=now - timedelta(seconds=1) if case == "expired" else now + timedelta(days=1),
            revoked_at=now - timedelta(minutes=5) if case == "revoked" else None,
            browser="Firefox", os="Linux", device="Desktop", refresh_jti=OLD_JTI,
            previous_refresh_jti=PREVIOUS_JTI if case in ("reused", "in_grace") else "",
            rotated_at={"reused": now - timedelta(hours=1), "in_grace": now}.get(case),
            auth_methods=["password"],
        )
        if case == "max_age":
            settings.SESSION_MAX_AGE = 1800
        if case == "in_grace":
            settings.REFRESH_REUSE_GRACE_SECONDS = 30
        jti = PREVIOUS_JTI if case in ("reused", "in_grace") else OLD_JTI
        presented = tokens.issue_pair(user_id=user.pk, session_id=session.pk, version=1, refresh_jti=jti,
                                      session_expires_at=session.expires_at, now=created, amr=["password"])
        counter["n"] = itertools.count(1)  # the path's first new jti is jti-1, on either path
        return presented.refresh

    return build


def _refresh(token: str):
    try:
        issued = services.session_refresh(refresh=token)
    except DomainError as error:
        return error.problem_code
    return tokens.decode_refresh(issued.refresh)["ver"], issued.session.refresh_jti


@pytest.mark.parametrize("case", ["live", "revoked", "expired", "max_age", "inactive", "user_version",
                                  "global_version", "reused", "in_grace"])
def test_rotation_statement_leaves_the_rows_the_locked_orm_path_leaves(pinned, settings, case):
    raw, orm = assert_same_rows(
        fixture=_refresh_fixture(pinned, settings, case),
        raw=_refresh, orm=with_orm_path(services.ROTATE)(_refresh),
        models=[Session, User, SecurityConfig, AuditEvent], ignore=AUDIT_VOLATILE,
    )
    assert raw.result == orm.result
    expected = {"live": (1, "jti-1"), "revoked": "SESSION_REVOKED", "user_version": "SESSION_REVOKED",
                "global_version": "SESSION_REVOKED", "reused": "TOKEN_REUSED"}.get(case, "TOKEN_INVALID")
    assert raw.result == expected


def test_postgresql_rotates_in_one_statement():
    assert services.ROTATE.usable() == (connection.vendor == "postgresql")


@pytest.mark.parametrize("case", ["first_login", "same_device", "other_device", "global_raised"])
def test_login_facts_statement_answers_what_the_orm_answers(pinned, case):
    now, _ = pinned
    info = describe(user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
                    ip="203.0.113.7")

    def build():
        user = User.objects.create(id=USER_ID, email="facts@example.com", date_joined=JOINED)
        if case == "global_raised":
            SecurityConfig.objects.create(pk=1, min_token_version=7)
        if case != "first_login":
            Session.objects.create(id=SESSION_ID, user=user, created_at=now, last_used_at=now,
                                   expires_at=now + timedelta(days=1), refresh_jti="facts-jti",
                                   device=info.device, location=info.location,
                                   browser=info.browser if case != "other_device" else "Other")
        return user

    def orm(user):
        mine = Session.objects.filter(user_id=user.pk)
        return (global_min_version(),
                mine.filter(device=info.device, browser=info.browser, location=info.location).exists(),
                mine.exists())

    raw, by_orm = assert_same_rows(fixture=build, raw=lambda user: services._login_facts(user_id=user.pk, info=info),
                                   orm=orm, models=[Session, SecurityConfig, User])
    assert raw.result == by_orm.result
    assert raw.result == {"first_login": (0, False, False), "same_device": (0, True, True),
                          "other_device": (0, False, True), "global_raised": (7, True, True)}[case]
