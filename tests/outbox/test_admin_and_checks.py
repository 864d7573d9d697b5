"""Staff see what waits in the outbox, never its arguments; bad settings stop start-up."""

from __future__ import annotations

import pytest

from dashtam.outbox.services import outbox_record

pytestmark = pytest.mark.django_db


def test_staff_see_waiting_tasks_but_not_their_arguments(client, staff_user):
    outbox_record(task_name="dashtam.tasks.send_email", args=[],
                  kwargs={"to": "ada@example.com", "template": "account_verify_email",
                          "context": {"link": "https://app.example.test/verify?token=one-time-secret"}},
                  headers={}, error="OperationalError")
    client.force_login(staff_user)

    response = client.get("/admin/dashtam_outbox/outboxtask/")

    assert response.status_code == 200
    body = response.content.decode()
    assert "dashtam.tasks.send_email" in body and "OperationalError" in body
    assert "one-time-secret" not in body and "ada@example.com" not in body
    assert client.get("/admin/dashtam_outbox/outboxtask/add/").status_code == 403


def test_the_arguments_are_sealed_at_rest():
    row = outbox_record(task_name="dashtam.tasks.send_email", args=[], headers={},
                        kwargs={"to": "ada@example.com", "context": {"token": "one-time-secret"}})
    assert "one-time-secret" not in row.payload and "ada@example.com" not in row.payload


def test_a_setting_that_is_not_positive_stops_start_up(settings):
    from dashtam.outbox.checks import check_outbox_settings

    settings.OUTBOX_BATCH_SIZE = 0
    [error] = check_outbox_settings()
    assert "OUTBOX_BATCH_SIZE" in error.msg
