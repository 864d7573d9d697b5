"""The session-liveness rule has one definition and three renderings; they agree on every case.

The ORM filters (``Session.objects.active`` / ``usable_by_token``), the Python verdict
(``refusal``, ``Session.is_active``) and the SQL fragment the rotation embeds
(``token_live_sql``) are run over a grid of sessions and must pick the same ones.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from dashtam.db.statements import Table
from sessions_mgmt.models import (
    SecurityConfig,
    Session,
    born_after,
    effective_expiry,
    global_min_version,
    refusal,
    token_live_sql,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def grid(settings):
    """Sessions in every combination: revoked or not, past expires_at or not, past the maximum
    age or not; of users active or not, with a minimum token version of 1 or 3."""
    settings.SESSION_MAX_AGE = 3600
    now = timezone.now()
    User = get_user_model()
    users = {}
    for n, (active, minimum) in enumerate(itertools.product([True, False], [1, 3])):
        users[active, minimum] = User.objects.create(email=f"grid{n}@example.com", is_active=active,
                                                     min_token_version=minimum)
    for (active, minimum), revoked, expired, too_old in itertools.product(
            users, [False, True], [False, True], [False, True]):
        created = now - timedelta(hours=2 if too_old else 0, minutes=1)
        Session.objects.create(
            user=users[active, minimum], created_at=created, last_used_at=created,
            expires_at=now + timedelta(days=-1 if expired else 1),
            revoked_at=now if revoked else None, refresh_jti=uuid.uuid4().hex)
    return now


def _by_refusal(*, now, version, global_min):
    return {s.pk for s in Session.objects.select_related("user") if refusal(
        revoked=s.revoked_at is not None, expires_at=effective_expiry(created_at=s.created_at, expires_at=s.expires_at),
        now=now, user_active=s.user.is_active, version=version, user_min=s.user.min_token_version,
        global_min=global_min) is None}


def _by_sql(*, now, version):
    s, u = Table(Session, connection, "s"), Table(get_user_model(), connection, "u")
    rule = token_live_sql(session=s, user=u, config=Table(SecurityConfig, connection, "c"),
                          version="%(ver)s", now="%(now)s", born_after="%(born_after)s")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {s.pk} FROM {s.ref} JOIN {u.ref} ON {u.pk} = {s.user} WHERE {rule}",
                       {"ver": version, "now": now, "born_after": born_after(now)})
        return {Session._meta.pk.to_python(row[0]) for row in cursor.fetchall()}


@pytest.mark.parametrize("global_min", [None, 2, 4])
@pytest.mark.parametrize("version", [1, 2, 3])
def test_the_orm_the_python_verdict_and_the_sql_fragment_pick_the_same_sessions(grid, version, global_min):
    now = grid
    if global_min is not None:
        SecurityConfig.objects.create(pk=1, min_token_version=global_min)
    by_orm = set(Session.objects.usable_by_token(version=version, now=now).values_list("pk", flat=True))
    assert by_orm == _by_refusal(now=now, version=version, global_min=global_min_version())
    assert by_orm == _by_sql(now=now, version=version)
    # Only active users' sessions that are neither revoked, expired nor too old, at a current version.
    assert len(by_orm) == (0 if version < max(global_min or 0, 1) else 1 if version < 3 else 2)


def test_the_session_part_is_active_and_its_complement_is_ended(grid):
    now = grid
    active = set(Session.objects.active(now=now).values_list("pk", flat=True))
    assert active == {s.pk for s in Session.objects.all() if s.is_active}
    assert len(active) == 4  # one per user
    ended = set(Session.objects.ended(now=now).values_list("pk", flat=True))
    assert ended == {s.pk for s in Session.objects.filter(revoked_at__isnull=True)} - active
    assert len(ended) == 12


def test_the_global_minimum_is_zero_until_raised():
    assert global_min_version() == 0
    SecurityConfig.objects.create(pk=1, min_token_version=5)
    assert global_min_version() == 5
