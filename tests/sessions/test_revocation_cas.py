"""The revocation cache never resurrects a revoked session: a fill is a compare-and-set.

Each test runs the interleaving step by step in one thread: a request's lookup, its
database read, a revocation or change committing (its on-commit cache writes included),
then the request's fill. The fill must leave the revocation's entry in place, and the
next request through the real stack must be refused.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache

from sessions_mgmt import revocation
from sessions_mgmt.models import Session
from sessions_mgmt.services import session_revoke

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/auth/sessions"
ROW = ("user_id", "revoked_at", "created_at", "expires_at", "last_used_at")


def _ids(issued, user) -> tuple[str, str]:
    return str(issued.session.pk), str(user.pk)


def test_a_fill_after_an_outage_cannot_replace_a_revocation_pinned_meanwhile(
    user, start_session, client_for, django_capture_on_commit_callbacks,
):
    issued = start_session(user)
    client = client_for(issued)
    assert client.get(SESSIONS).status_code == 200  # the session is cached as active
    # A Redis outage ended with a new generation: every entry is now stale, to be refilled.
    cache.set(revocation.GEN_KEY, "after-the-outage", timeout=None)
    sid, uid = _ids(issued, user)

    found = revocation.lookup(session_id=sid, user_id=uid)
    assert found.cache_ok and found.session is None and found.session_stale
    live = revocation.state_from_row(Session.objects.filter(pk=sid).values(*ROW).get())  # read: still live

    with django_capture_on_commit_callbacks(execute=True):
        assert session_revoke(session=issued.session, reason="test") is True  # commits and pins "revoked"

    revocation.fill(lookup=found, session_id=sid, user_id=uid, session=live)  # the request's late write

    assert cache.get(revocation.session_key(sid))[1].revoked
    response = client.get(SESSIONS)
    assert response.status_code == 401
    assert response.json()["code"] == "SESSION_REVOKED"


def test_a_fill_cannot_replace_the_marker_of_a_second_change_within_the_cache_lifetime(
    user, start_session, client_for, django_capture_on_commit_callbacks,
):
    issued = start_session(user)
    client = client_for(issued)
    assert client.get(SESSIONS).status_code == 200  # the user row is cached
    sid, uid = _ids(issued, user)
    with django_capture_on_commit_callbacks(execute=True):
        user.first_name = "Ada"
        user.save(update_fields=["first_name"])  # change 1: the entry becomes a CHANGED marker

    found = revocation.lookup(session_id=sid, user_id=uid)
    assert found.cache_ok and found.user is None
    before = type(user).objects.get(pk=uid)  # the request reads the row: still active

    with django_capture_on_commit_callbacks(execute=True):
        other = type(user).objects.get(pk=uid)  # change 2, another process's copy
        other.is_active = False
        other.save(update_fields=["is_active"])

    revocation.fill(lookup=found, session_id=sid, user_id=uid, user=before)

    entry = cache.get(revocation.user_key(uid))
    assert not isinstance(entry, tuple), "the active row read before change 2 was written over its marker"
    assert client.get(SESSIONS).status_code == 401


def test_a_fill_writes_nothing_once_the_generation_changed(user, start_session):
    issued = start_session(user)
    sid, uid = _ids(issued, user)
    found = revocation.lookup(session_id=sid, user_id=uid)
    live = revocation.state_from_row(Session.objects.filter(pk=sid).values(*ROW).get())
    cache.set(revocation.GEN_KEY, "changed-after-an-outage", timeout=None)

    revocation.fill(lookup=found, session_id=sid, user_id=uid, session=live, user=user, global_version=0)

    assert cache.get(revocation.session_key(sid)) is None
    assert cache.get(revocation.user_key(uid)) is None


def test_a_fill_still_caches_what_it_found_missing(user, start_session):
    issued = start_session(user)
    sid, uid = _ids(issued, user)
    found = revocation.lookup(session_id=sid, user_id=uid)
    live = revocation.state_from_row(Session.objects.filter(pk=sid).values(*ROW).get())

    revocation.fill(lookup=found, session_id=sid, user_id=uid, session=live, user=user, global_version=0)

    again = revocation.lookup(session_id=sid, user_id=uid)
    assert again.session == live
    assert again.user.pk == user.pk and again.global_version == 0


def test_a_stale_high_cached_user_minimum_is_confirmed_and_corrected_in_the_cache(user, start_session, client_for):
    import copy

    issued = start_session(user)
    client = client_for(issued)
    assert client.get(SESSIONS).status_code == 200
    sid, uid = _ids(issued, user)
    found = revocation.lookup(session_id=sid, user_id=uid)
    stale = copy.copy(found.user)
    stale.min_token_version = 99  # as after a bump that rolled back
    cache.set(revocation.user_key(uid), (found.generation, stale), timeout=300)

    assert client.get(SESSIONS).status_code == 200  # confirmed against the database
    assert revocation.lookup(session_id=sid, user_id=uid).user.min_token_version == user.min_token_version
