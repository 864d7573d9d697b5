"""Transactional email: rendered from templates, sent by a Celery task after commit.

Every app sends mail through ``send_templated_email``. The task is enqueued on
transaction commit (``dashtam.outbox.services.enqueue``), so a rolled-back change
sends nothing, a dead broker delays the email instead of losing it, and a failing
mail server is retried with backoff by the task without ever failing the request.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.template.loader import render_to_string

logger = logging.getLogger("dashtam.mail")


def render_email(template: str, context: dict) -> tuple[str, str, str]:
    """(subject, text, html) from templates/email/<template>.{subject.txt,txt,html}."""
    ctx = {"frontend_url": settings.FRONTEND_URL, "product": "Dashtam", **context}
    subject = " ".join(render_to_string(f"email/{template}.subject.txt", ctx).split())
    text = render_to_string(f"email/{template}.txt", ctx)
    html = render_to_string(f"email/{template}.html", ctx)
    return subject, text, html


def send_templated_email(*, to: str, template: str, context: dict | None = None) -> None:
    """Enqueue one email on commit. Context values must be JSON-serialisable.

    Links in the context may carry one-time tokens: the context travels in the
    broker message (and, during a broker outage, sealed in the task outbox), which
    is why tokens are single-use and short-lived. A dead broker never fails the
    request: the email waits in the outbox (``dashtam.outbox``).
    """
    from dashtam.outbox.services import enqueue
    from dashtam.tasks import send_email

    enqueue(send_email, to=to, template=template, context=context or {})
