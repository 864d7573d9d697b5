"""A deleted user's events stay, with the email snapshot (the chain does not hash the FK)."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from audit.services import audit_chain_seal, audit_chain_verify, record
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_deleting_a_user_keeps_their_events_with_the_email_snapshot(in_request):
    user = UserFactory()
    record(action="auth.logout", actor=user)
    audit_chain_seal()
    email = user.email
    user.delete()
    event = AuditEvent.objects.get()
    assert event.actor_id is None and event.actor_email == email
    assert audit_chain_verify().ok
