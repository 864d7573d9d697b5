"""Carry the request context into Celery tasks.

``before_task_publish`` runs where a task is enqueued: it copies the request id,
the actor and the login session of the current context into the message
headers. ``task_prerun`` runs in the worker: it restores a ``RequestContext``
for the task (origin ``task``), so audit rows and log lines written by the task
carry the id of the request that caused it. Tasks sent by beat have no request:
beat's scheduler thread runs under a context of origin ``scheduler``, so each
message it sends gets a fresh request id of its own (origin ``beat`` in the
worker); tasks those enqueue in turn share that id, like a request's tasks do.

Connected in ``DashtamConfig.ready``. Eager tasks (tests, ``CELERY_TASK_ALWAYS_EAGER``)
are not published: they run in the caller's thread and inherit its context.
"""

from __future__ import annotations

from dashtam import context

HEADER_REQUEST_ID = "dashtam_request_id"
HEADER_ORIGIN = "dashtam_origin"
HEADER_USER_ID = "dashtam_user_id"
HEADER_USER_EMAIL = "dashtam_user_email"
HEADER_SESSION_ID = "dashtam_session_id"
HEADER_CLIENT_REQUEST_ID = "dashtam_client_request_id"

# task id -> token to reset the context after the task (one entry per running task).
_tokens: dict[str, object] = {}


def on_before_task_publish(sender=None, headers=None, **kwargs) -> None:
    if headers is None:
        return
    ctx = context.get()
    if ctx is None:
        # Enqueued outside any request (a shell, a management command): the task gets its own id.
        return
    if ctx.origin == "scheduler":
        headers[HEADER_REQUEST_ID] = context.new_request_id()
        headers[HEADER_ORIGIN] = "beat"
        return
    headers[HEADER_REQUEST_ID] = ctx.request_id
    headers[HEADER_ORIGIN] = "task"
    if ctx.user_id:
        headers[HEADER_USER_ID] = ctx.user_id
        headers[HEADER_USER_EMAIL] = ctx.user_email
    if ctx.session_id:
        headers[HEADER_SESSION_ID] = ctx.session_id
    if ctx.client_request_id:
        headers[HEADER_CLIENT_REQUEST_ID] = ctx.client_request_id


def _header(task, name: str):
    request = getattr(task, "request", None)
    if request is None:
        return None
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


def on_task_prerun(sender=None, task_id=None, task=None, **kwargs) -> None:
    if task is None or task_id is None:
        return
    request_id = _header(task, HEADER_REQUEST_ID)
    parent = context.get()
    task_name = getattr(task, "name", "") or ""
    if request_id:
        client_request_id = str(_header(task, HEADER_CLIENT_REQUEST_ID) or "")
        ctx = context.RequestContext(
            request_id=context.sane_request_id(str(request_id)),
            client_request_id=client_request_id if context.REQUEST_ID_RE.match(client_request_id) else "",
            user_id=_header(task, HEADER_USER_ID) or None,
            user_email=_header(task, HEADER_USER_EMAIL) or "",
            session_id=_header(task, HEADER_SESSION_ID) or None,
            route=task_name,
            origin="beat" if _header(task, HEADER_ORIGIN) == "beat" else "task",
        )
    elif parent is not None and parent.origin != "scheduler":
        # An eager task runs inside its caller: same request, same actor.
        ctx = context.RequestContext(
            request_id=parent.request_id, client_request_id=parent.client_request_id,
            user_id=parent.user_id, user_email=parent.user_email,
            session_id=parent.session_id, ip=parent.ip, user_agent=parent.user_agent,
            fingerprint=parent.fingerprint, route=task_name, origin="task",
        )
    else:
        ctx = context.RequestContext(
            request_id=context.new_request_id(), route=task_name, origin="task",
        )
    _tokens[task_id] = context.set_context(ctx)


def on_task_postrun(sender=None, task_id=None, **kwargs) -> None:
    token = _tokens.pop(task_id, None) if task_id else None
    if token is None:
        return
    try:
        context.reset(token)
    except ValueError:
        # Reset from another thread or context than the one that set it (should not
        # happen with Celery's pools); leave no task context behind in this one.
        context.set_context(None)


def on_beat_init(sender=None, **kwargs) -> None:
    """Beat's scheduler loop runs in this thread: mark it, so each task it sends gets its own id."""
    context.set_context(context.RequestContext(request_id="scheduler", origin="scheduler"))


def connect() -> None:
    from celery import signals

    signals.before_task_publish.connect(on_before_task_publish, weak=False,
                                        dispatch_uid="dashtam.context.before_task_publish")
    signals.task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="dashtam.context.task_prerun")
    signals.task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="dashtam.context.task_postrun")
    signals.beat_init.connect(on_beat_init, weak=False, dispatch_uid="dashtam.context.beat_init")
