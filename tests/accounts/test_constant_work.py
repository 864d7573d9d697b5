"""Resend and reset requests do the same work for known and unknown addresses.

Timing cannot be asserted in tests; the work can: the request makes the same
database queries either way, and the lookup happens in the task afterwards.
"""

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import UserFactory


def queries_for(api_client, path, email):
    with CaptureQueriesContext(connection) as ctx:
        response = api_client.post(path, {"email": email}, format="json")
    assert response.status_code == 202
    return [q["sql"] for q in ctx.captured_queries]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/auth/request-password-reset", "/api/v1/auth/resend-verification"])
def test_known_and_unknown_addresses_cost_the_request_the_same_queries(api_client, path,
                                                                       django_capture_on_commit_callbacks):
    UserFactory(email="known@example.com", email_verified_at=None)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        known = queries_for(api_client, path, "known@example.com")
        unknown = queries_for(api_client, path, "nobody@example.com")
    assert len(known) == len(unknown)
    assert not any("accounts_user" in sql for sql in known)
    assert len(callbacks) == 2  # the lookup is enqueued for both


@pytest.mark.django_db
def test_the_enqueued_reset_still_mails_a_known_address(api_client, django_capture_on_commit_callbacks):
    UserFactory(email="known@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post("/api/v1/auth/request-password-reset", {"email": "Known@Example.com"}, format="json")
        api_client.post("/api/v1/auth/request-password-reset", {"email": "nobody@example.com"}, format="json")
    assert [m.to for m in mail.outbox] == [["known@example.com"]]
