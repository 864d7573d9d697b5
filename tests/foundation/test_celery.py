"""Background work runs on a real worker, on whichever broker is configured."""

import pytest
from celery import shared_task
from django.core.cache import cache
from django.db import transaction

from tests.conftest import wait_until

pytestmark = pytest.mark.integration


@shared_task(name="tests.foundation.mark")
def mark(key: str) -> None:
    cache.set(key, "done", 60)


def test_a_task_enqueued_on_commit_runs_on_a_real_worker(celery_worker):
    with transaction.atomic():
        transaction.on_commit(lambda: mark.delay("celery-smoke"))
        assert cache.get("celery-smoke") is None  # nothing runs before the commit
    assert wait_until(lambda: cache.get("celery-smoke") == "done", timeout=30)


def test_templated_email_goes_through_the_worker_to_smtp(celery_worker, smtp_sink, test_templates):
    from dashtam.mail import send_templated_email

    with transaction.atomic():
        send_templated_email(to="someone@example.com", template="test_notice",
                             context={"name": "Ada"})
    (message,) = smtp_sink.wait_for(1, to="someone@example.com", timeout=30)
    assert message["Subject"] == "Dashtam test notice for Ada"
    assert "Hello Ada" in smtp_sink.text(message)
    assert message.get_body(preferencelist=("html",)) is not None
