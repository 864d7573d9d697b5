"""One way to enqueue background work, and the outbox that outlives a broker outage.

``enqueue(task, *args, **kwargs)`` is how every app sends a Celery task. It
publishes once the caller's transaction commits (a rolled-back change enqueues
nothing, and the worker always finds the committed rows). When the broker
refuses the message, the committed work still answers normally: the task is
written to the outbox table (``OutboxTask``) instead, and the sweeper
(``outbox_sweep``, run by beat every OUTBOX_SWEEP_INTERVAL seconds) publishes it
once the broker is back.

- After a failed publish this process knows the broker is down for
  OUTBOX_BROKER_RETRY_SECONDS: meanwhile ``enqueue`` writes the outbox row inside
  the caller's transaction (as durable as the work itself, and no request waits on
  a connect timeout), and does not try the broker.
- The sweeper claims rows with ``select_for_update(skip_locked=True)`` on
  PostgreSQL (SQLite serialises writers), publishes each, and deletes it in the
  same transaction: two sweepers never publish the same row. A crash between the
  publish and the commit publishes that row again later, which is why every task
  is idempotent.
- Rows keep the request context (request id, actor, session) the message would
  have carried, so the task's audit rows and logs still name the request that
  caused it. Arguments are sealed with FIELD_ENCRYPTION_KEYS (an email's context
  may hold a one-time link).
- In eager mode (tests, ``CELERY_TASK_ALWAYS_EAGER``) the task runs on commit in
  the caller's thread; as on a worker, its failure is logged and never fails the
  request that enqueued it.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from dashtam.outbox.models import OutboxTask

if TYPE_CHECKING:
    from celery import Task

logger = logging.getLogger("dashtam.outbox")

_AAD = "dashtam.outbox.payload"
_lock = threading.Lock()
_state = {"broker_down_until": 0.0}


def _eager(task: Task) -> bool:
    return bool(task.app.conf.task_always_eager)


def broker_known_down() -> bool:
    """True for OUTBOX_BROKER_RETRY_SECONDS after this process saw a publish fail."""
    return time.monotonic() < _state["broker_down_until"]


def _broker_failed(exc: BaseException, task_name: str) -> None:
    with _lock:
        _state["broker_down_until"] = time.monotonic() + settings.OUTBOX_BROKER_RETRY_SECONDS
    logger.warning("broker unavailable: task kept in the outbox",
                   extra={"task": task_name, "error": type(exc).__name__})


def reset_process_state() -> None:
    """Forget a past broker failure (tests)."""
    with _lock:
        _state["broker_down_until"] = 0.0


def _headers() -> dict:
    """The request-context headers a message published now would carry."""
    from dashtam.context_celery import on_before_task_publish

    headers: dict = {}
    on_before_task_publish(headers=headers)
    return headers


def enqueue(task: Task, *args: Any, **kwargs: Any) -> None:
    """Send ``task(*args, **kwargs)`` once the current transaction commits (at once outside one).

    Never fails because of the broker: a task the broker refuses is kept in the
    outbox and published by the sweeper later. Arguments must be JSON-serialisable.
    """
    if not _eager(task) and broker_known_down():
        # Recorded with the work: committed together, or rolled back together.
        outbox_record(task_name=task.name, args=args, kwargs=kwargs, headers=_headers(),
                      error="broker unavailable (a recent publish failed)")
        return
    transaction.on_commit(lambda: dispatch(task, args, kwargs))


def dispatch(task: Task, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
    """Publish one task now, or keep it in the outbox when the broker refuses it."""
    if _eager(task):
        try:
            task.apply_async(args, kwargs)
        except Exception:  # as on a worker: a task's failure is not the request's
            logger.exception("eager task failed", extra={"task": task.name})
        return
    try:
        # No publish retries here: the outbox is the retry, and a request must not
        # wait through a retry policy on a dead broker.
        task.apply_async(args, kwargs, retry=False)
    except Exception as exc:  # whatever the broker raised, the work has committed
        _broker_failed(exc, task.name)
        try:
            with transaction.atomic():
                outbox_record(task_name=task.name, args=args, kwargs=kwargs, headers=_headers(),
                              error=f"{type(exc).__name__}")
        except Exception:  # the request committed: report, never answer 500 for it
            logger.exception("task lost: neither the broker nor the outbox took it",
                             extra={"task": task.name})


def outbox_record(*, task_name: str, args: Sequence[Any], kwargs: dict[str, Any], headers: dict, error: str = "") -> OutboxTask:
    """Write one task to the outbox (inside the caller's transaction, if any). Not idempotent:
    each call is one more publish later."""
    from dashtam.crypto import encrypt

    payload = json.dumps({"args": list(args), "kwargs": dict(kwargs), "headers": headers})
    return OutboxTask.objects.create(task_name=task_name[:200], payload=encrypt(payload, aad=_AAD),
                                     last_error=error[:255])


def _publish(row: OutboxTask) -> None:
    """Publish one row's task under the request context it was recorded with."""
    from dashtam import context
    from dashtam import context_celery as propagation
    from dashtam.celery import app
    from dashtam.crypto import decrypt

    data = json.loads(decrypt(row.payload, aad=_AAD))
    headers = data.get("headers") or {}
    ctx = None
    if headers.get(propagation.HEADER_REQUEST_ID):
        ctx = context.RequestContext(
            request_id=context.sane_request_id(str(headers[propagation.HEADER_REQUEST_ID])),
            user_id=headers.get(propagation.HEADER_USER_ID) or None,
            user_email=headers.get(propagation.HEADER_USER_EMAIL) or "",
            session_id=headers.get(propagation.HEADER_SESSION_ID) or None,
            origin="task",
        )
    # before_task_publish copies the current context into the message: make it the recorded one.
    token = context.set_context(ctx)
    try:
        # send_task publishes even in eager mode (a row in the outbox is for the broker).
        app.send_task(row.task_name, args=data.get("args") or [], kwargs=data.get("kwargs") or {},
                      retry=False)
    finally:
        context.reset(token)


def _backoff(attempts: int) -> timedelta:
    cap = settings.OUTBOX_RETRY_MAX_SECONDS
    base = settings.OUTBOX_SWEEP_INTERVAL
    jitter = 0.5 + secrets.randbelow(501) / 1000  # 0.5 to 1.0: sweepers of many processes spread out
    return timedelta(seconds=min(cap, base * 2 ** min(attempts, 16)) * jitter)


def outbox_sweep(*, batch_size: int | None = None) -> int:
    """Publish the outbox's due tasks, oldest first; return how many were published.

    Each batch is one transaction: its rows are locked (skip_locked on
    PostgreSQL, so a second sweeper takes other rows or none), published one by
    one, and the published ones deleted. A publish failure ends the sweep: that
    row waits with backoff (OUTBOX_SWEEP_INTERVAL doubled per attempt, at most
    OUTBOX_RETRY_MAX_SECONDS), the rest stay due. A row that cannot be opened (its
    key left FIELD_ENCRYPTION_KEYS) waits the longest backoff and says why.
    Idempotent: an empty outbox publishes nothing.
    """
    from dashtam.crypto import DecryptionError

    size = batch_size or settings.OUTBOX_BATCH_SIZE
    total = 0
    while True:
        with transaction.atomic():
            due = OutboxTask.objects.filter(next_attempt_at__lte=timezone.now()).order_by("id")
            if connection.features.has_select_for_update_skip_locked:
                due = due.select_for_update(skip_locked=True)
            rows = list(due[:size])
            sent: list[int] = []
            failed = False
            for row in rows:
                # Trying the broker: until it fails again, this process's enqueues try it too.
                reset_process_state()
                try:
                    _publish(row)
                except (DecryptionError, ValueError) as exc:
                    logger.error("outbox task cannot be opened", extra={"task": row.task_name, "outbox_id": row.pk})
                    OutboxTask.objects.filter(pk=row.pk).update(
                        attempts=row.attempts + 1, last_error=f"cannot be opened: {type(exc).__name__}",
                        next_attempt_at=timezone.now() + timedelta(seconds=settings.OUTBOX_RETRY_MAX_SECONDS))
                    continue
                except Exception as exc:  # the broker is still down: try again later
                    _broker_failed(exc, row.task_name)
                    OutboxTask.objects.filter(pk=row.pk).update(
                        attempts=row.attempts + 1, last_error=type(exc).__name__[:255],
                        next_attempt_at=timezone.now() + _backoff(row.attempts))
                    failed = True
                    break
                sent.append(row.pk)
            if sent:
                OutboxTask.objects.filter(pk__in=sent).delete()
        total += len(sent)
        if sent:
            logger.info("outbox tasks published", extra={"count": len(sent)})
        if failed or len(rows) < size:
            return total


def outbox_backlog() -> int:
    """How many tasks wait in the outbox (for operators)."""
    return OutboxTask.objects.count()
