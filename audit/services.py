"""The one way into the audit trail."""

from __future__ import annotations

from audit import context
from audit.catalogue import validate
from audit.models import AuditEvent, Outcome
from dashtam.logging import scrub


def record(*, action: str, outcome: str = "success", target=None, extra: dict | None = None,
           actor=None, target_type: str = "", target_id: str = "", target_repr: str = "") -> AuditEvent:
    """Write one audit event inside the caller's transaction.

    The request context (request id, IP, user agent, route, session) is filled in
    from the contextvar. ``actor`` defaults to the authenticated user of the
    request; pass it explicitly when the request is not authenticated yet (login).
    Secrets in ``extra`` are scrubbed by key. An action code missing from
    ``audit/catalogue.py`` or an unknown outcome raises ValueError.
    """
    validate(action)
    if outcome not in Outcome.values:
        raise ValueError(f"Unknown audit outcome {outcome!r}")
    ctx = context.get()
    if target is not None:
        target_type = target_type or f"{target._meta.app_label}.{target._meta.model_name}"
        target_id = target_id or str(target.pk)
        target_repr = target_repr or str(target)[:255]
    actor_id = None
    actor_email = ""
    if actor is not None:
        actor_id, actor_email = actor.pk, actor.email
    elif ctx is not None and ctx.user_id:
        actor_id, actor_email = ctx.user_id, ctx.user_email
    return AuditEvent.objects.create(
        action=action,
        outcome=outcome,
        actor_id=actor_id,
        actor_email=actor_email,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        request_id=(ctx.request_id if ctx else "") or "",
        session_id=(ctx.session_id if ctx else "") or "",
        ip=ctx.ip if ctx else None,
        user_agent=(ctx.user_agent if ctx else "")[:512],
        fingerprint=ctx.fingerprint if ctx else "",
        method=ctx.method if ctx else "",
        path=(ctx.path if ctx else "")[:512],
        route=(ctx.route if ctx else "")[:255],
        extra=scrub(extra or {}),
    )
