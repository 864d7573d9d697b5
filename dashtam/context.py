"""The request context: who asked, from where, under which request id.

One contextvar holds it for the whole request (or Celery task). The request-id
and network parts are set by ``RequestContextMiddleware`` before anything else
runs; the actor and the login session are bound by the DRF authentication class
once it has authenticated the request (never read from ``request.user`` early).
"""

from __future__ import annotations

import contextvars
import hashlib
import ipaddress
import re
import uuid
from dataclasses import dataclass, field, replace

from django.conf import settings

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    client_request_id: str = ""  # the client's own X-Request-ID when it was not trusted
    ip: str | None = None
    user_agent: str = ""
    method: str = ""
    path: str = ""
    route: str = ""
    fingerprint: str = ""
    user_id: str | None = None
    user_email: str = ""
    session_id: str | None = None
    origin: str = "request"  # request | task | beat | command | scheduler (beat's own thread)
    extra: dict = field(default_factory=dict)


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "dashtam_request_context", default=None
)


def new_request_id() -> str:
    return str(uuid.uuid4())


def sane_request_id(value: str | None) -> str:
    """The client's X-Request-ID when it is sane, else a new UUID4."""
    if value and REQUEST_ID_RE.match(value):
        return value
    return new_request_id()


def request_ids(meta) -> tuple[str, str]:
    """(request id, client request id) for an incoming request.

    The incoming X-Request-ID becomes the request id only when it is sane and a trusted
    proxy is in front (TRUSTED_PROXY_COUNT > 0): the load balancer's id. Otherwise every
    request gets a new UUID, so two clients sending the same id never share a trail,
    and a sane client value is kept apart as the client request id.
    """
    incoming = meta.get("HTTP_X_REQUEST_ID")
    sane = incoming if incoming and REQUEST_ID_RE.match(incoming) else ""
    if sane and settings.TRUSTED_PROXY_COUNT > 0:
        return sane, ""
    return new_request_id(), sane


def get() -> RequestContext | None:
    return _current.get()


def current_request_id() -> str | None:
    ctx = _current.get()
    return ctx.request_id if ctx else None


def set_context(ctx: RequestContext | None) -> contextvars.Token:
    return _current.set(ctx)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)


def update(**changes) -> None:
    ctx = _current.get()
    if ctx is not None:
        _current.set(replace(ctx, **changes))


def add_duration(name: str, ms: float) -> None:
    """Add ``ms`` to a named duration of this request; the access log line shows it."""
    ctx = _current.get()
    if ctx is not None:
        _current.set(replace(ctx, extra={**ctx.extra, name: round(ctx.extra.get(name, 0.0) + ms, 2)}))


def add_count(name: str, n: int = 1) -> None:
    """Add ``n`` to a named count of this request; the access log line shows it."""
    ctx = _current.get()
    if ctx is not None:
        _current.set(replace(ctx, extra={**ctx.extra, name: ctx.extra.get(name, 0) + n}))


def bind_actor(user, session_id=None) -> None:
    """Record the authenticated user (and login session) for the rest of the request."""
    update(
        user_id=str(user.pk) if user is not None and user.pk else None,
        user_email=getattr(user, "email", "") or "",
        session_id=str(session_id) if session_id else None,
    )


def fingerprint(ip: str | None, user_agent: str) -> str:
    return hashlib.sha256(f"{ip or ''}|{user_agent}".encode()).hexdigest()


def _valid_ip(value: str) -> str | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:
        value = value[1 : value.index("]")]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def client_ip(meta) -> str | None:
    """The client's IP, trusting exactly TRUSTED_PROXY_COUNT proxies.

    With N trusted proxies, the last N hops are ours: the client is the N-th
    address from the right of X-Forwarded-For. With 0, X-Forwarded-For is
    ignored entirely, so a client cannot choose its own address.
    """
    remote = _valid_ip(meta.get("REMOTE_ADDR", "") or "")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    hops = [h for h in (meta.get("HTTP_X_FORWARDED_FOR", "") or "").split(",") if h.strip()]
    if len(hops) < count:
        # Fewer hops than proxies: the request did not come through all of them.
        return remote
    return _valid_ip(hops[-count]) or remote


def client_ip_for_request(request) -> str | None:
    """django-axes hook (AXES_CLIENT_IP_CALLABLE): the same IP as everywhere else."""
    ctx = _current.get()
    if ctx is not None and ctx.ip:
        return ctx.ip
    return client_ip(request.META)


def context_for_request(request, request_id: str, client_request_id: str = "") -> RequestContext:
    ip = client_ip(request.META)
    ua = (request.META.get("HTTP_USER_AGENT", "") or "")[:512]
    return RequestContext(
        request_id=request_id,
        client_request_id=client_request_id,
        ip=ip,
        user_agent=ua,
        method=request.method or "",
        path=request.path[:512],
        fingerprint=fingerprint(ip, ua),
    )
