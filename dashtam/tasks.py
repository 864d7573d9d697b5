"""Tasks shared by every app."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from dashtam.mail import render_email

logger = logging.getLogger("dashtam.mail")


@shared_task(
    bind=True,
    autoretry_for=(OSError, ConnectionError, TimeoutError),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def send_email(self, *, to: str, template: str, context: dict) -> None:
    """Render and send one email. Retried with backoff on transport errors.

    Not idempotent with respect to the recipient (a retry after a timeout that
    did deliver sends twice); that is the usual SMTP trade-off and preferable to
    losing a security notification.
    """
    subject, text, html = render_email(template, context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [to])
    message.attach_alternative(html, "text/html")
    message.send(fail_silently=False)
    logger.info("email sent", extra={"template": template})
