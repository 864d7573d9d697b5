"""The shared factories write the rows the services would: tests built on them start from the
state the real flows leave behind."""

from __future__ import annotations

import pytest

from tests.factories import (
    AuditEventFactory,
    ProviderConnectionFactory,
    ProviderTokenFactory,
    SessionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def test_a_factory_session_is_live_and_listed_for_its_user():
    from sessions_mgmt.models import Session

    session = SessionFactory()
    assert Session.objects.active().filter(pk=session.pk).exists()
    assert not Session.objects.active().filter(pk=SessionFactory(user=session.user, revoked=True).pk).exists()


def test_a_factory_token_opens_with_the_services_own_reader():
    from providers import services

    token = ProviderTokenFactory(access="AT-plain", refresh="RT-plain")
    token.refresh_from_db()
    assert services.token_access_plaintext(token=token) == "AT-plain"
    assert token.connection.status == "active" and token.connection.user.is_active
    assert "AT-plain" not in token.access_token_encrypted


def test_a_connection_with_its_first_sync_queued():
    connection = ProviderConnectionFactory(sync_queued=True)
    assert connection.sync_job_id is not None and connection.sync_requested_at == connection.connected_at


def test_a_factory_audit_event_is_recorded_and_chains():
    from audit.models import AuditEvent
    from audit.services import audit_chain_seal, audit_chain_verify

    user = UserFactory()
    event = AuditEventFactory(actor=user, target=user)
    assert AuditEvent.objects.get(pk=event.pk).action == "auth.login.succeeded"
    assert event.actor_email == user.email and event.row_hash
    audit_chain_seal()
    assert audit_chain_verify().ok
