"""The theft email really leaves: a real Celery worker, a real SMTP server."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

REFRESH = "/api/v1/auth/refresh"


def test_token_reuse_email_is_delivered(user, start_session, celery_worker, smtp_sink):
    issued = start_session(user)
    client = APIClient()
    assert client.post(REFRESH, {"refresh": issued.refresh}, format="json").status_code == 200

    response = client.post(REFRESH, {"refresh": issued.refresh}, format="json")

    assert response.json()["code"] == "TOKEN_REUSED"
    [message] = smtp_sink.wait_for(1, to=user.email)
    assert "ended a Dashtam session" in message["Subject"]
    assert "used twice" in smtp_sink.text(message)
