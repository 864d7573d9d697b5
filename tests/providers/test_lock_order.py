"""Refresh and revoke never deadlock: one lock order (connection, then token), and no row lock
held while the provider answers (issue 13 §5). PostgreSQL only: SQLite has no row locks."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.db import connections
from django.utils import timezone

from audit.models import AuditEvent
from providers import services
from providers.models import ConnectionStatus, ProviderConnection, ProviderToken
from tests.conftest import PASSWORD
from tests.factories import ProviderConnectionFactory, ProviderTokenFactory, UserFactory
from tests.providers.conftest import client_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("__import__('django.db').db.connection.vendor != 'postgresql'",
                       reason="row locks and deadlock detection need PostgreSQL"),
]

RACES = 50


def _active_connection(schwab, user) -> ProviderConnection:
    """An active connection whose token the fake Schwab will refresh (rows written directly: the
    race, not the OAuth flow, is under test)."""
    now = timezone.now()
    connection = ProviderConnectionFactory(user=user, alias="Race", connected_at=now,
                                           last_refreshed_at=now - timedelta(hours=1))
    refresh = "RT-" + secrets.token_urlsafe(16)
    with schwab.lock:
        schwab.refresh_tokens.add(refresh)
    ProviderTokenFactory(connection=connection, refresh=refresh, expires_at=now + timedelta(minutes=2),
                         refresh_expires_at=now + timedelta(days=7), scope="")
    return connection


def _run(target, results, name):
    def body():
        try:
            results[name] = target()
        except BaseException as exc:  # reported by the assertions below
            results[name] = exc
        finally:
            connections.close_all()
    thread = threading.Thread(target=body)
    thread.start()
    return thread


def _wait_for_token_call(schwab, before: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(schwab.token_calls) == before and time.monotonic() < deadline:
        time.sleep(0.005)


@pytest.mark.slow
def test_refreshes_and_revokes_race_without_deadlock_or_500(schwab):
    assert db_connection.vendor == "postgresql"
    schwab.default_mode = "slow"  # the provider takes its time: the revoke arrives meanwhile
    schwab.slow_seconds = 0.15
    refresh_statuses, revoke_outcomes = [], []
    for n in range(RACES):
        user = UserFactory(password=PASSWORD)
        connection = _active_connection(schwab, user)
        client = client_for(user)
        results: dict = {}
        calls = len(schwab.token_calls)
        refresh = _run(lambda c=client, pk=connection.pk: c.post(f"/api/v1/providers/{pk}/token-refresh"),
                       results, "refresh")
        if n % 2 == 0:
            _wait_for_token_call(schwab, calls)  # the refresh is waiting on the provider
        if n % 4 < 2:
            # The account is deactivated (DELETE auth/me): sessions, then connections, revoked.
            revoke = _run(lambda c=client_for(user): c.delete("/api/v1/auth/me", {"password": PASSWORD},
                                                              format="json"), results, "revoke")
        else:
            # Staff revoke the connection (what the admin action calls).
            revoke = _run(lambda c=connection: services.connection_revoke(connection=c, reason="admin"),
                          results, "revoke")
        refresh.join(30)
        revoke.join(30)
        assert not isinstance(results["refresh"], BaseException), results["refresh"]
        assert not isinstance(results["revoke"], BaseException), results["revoke"]
        refresh_statuses.append(results["refresh"].status_code)
        revoke_outcomes.append(getattr(results["revoke"], "status_code", results["revoke"]))
        connection.refresh_from_db()
        assert connection.status == ConnectionStatus.REVOKED
        assert not ProviderToken.objects.filter(connection=connection).exists()

    assert 500 not in refresh_statuses, refresh_statuses
    # 200: refreshed before the revoke; 409: the revoke came first or while the provider answered
    # (the answer is dropped); 401: the deactivation ended the session before the request ran.
    assert set(refresh_statuses) <= {200, 409, 401}, refresh_statuses
    assert set(revoke_outcomes) <= {204, True}, revoke_outcomes
    assert AuditEvent.objects.filter(action="provider.connection.revoked").count() == RACES


def test_a_revoke_does_not_wait_for_a_refresh_in_flight_and_its_answer_is_dropped(schwab, user):
    """The provider is still answering a refresh when the connection is revoked: the revoke
    completes at once (no row lock is held across the network call), and the late answer is
    dropped: the revoke stands and no refreshed event is written."""
    schwab.default_mode = "gate"
    connection = _active_connection(schwab, user)
    results: dict = {}
    refresh = _run(lambda: services.token_refresh(connection_id=connection.pk, force=True), results, "refresh")
    _wait_for_token_call(schwab, 0)
    revoke = _run(lambda: services.connection_revoke(connection=connection, reason="admin"), results, "revoke")
    revoke.join(schwab.gate_timeout / 2)
    revoked_while_the_provider_answered = not revoke.is_alive() and "refresh" not in results
    schwab.gate.set()  # the provider answers now
    refresh.join(30)
    revoke.join(30)
    assert revoked_while_the_provider_answered
    assert results["revoke"] is True
    assert results["refresh"].status == "inactive"
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.REVOKED
    assert not ProviderToken.objects.exists()
    assert not AuditEvent.objects.filter(action="provider.token.refreshed").exists()
