"""Applying the rule table to one request: keys, one count, the verdict, headers, audit."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

from dashtam import context
from dashtam.api.middleware import is_api
from dashtam.email_address import canonical_email
from dashtam.ratelimit.counter import Decision, consume_many, refund_many
from dashtam.ratelimit.rules import Rule, rules_for

logger = logging.getLogger("dashtam.ratelimit")

HEADER_LIMIT = "X-RateLimit-Limit"
HEADER_REMAINING = "X-RateLimit-Remaining"
HEADER_RESET = "X-RateLimit-Reset"


@dataclass(frozen=True)
class Hit:
    rule: Rule
    key: str
    decision: Decision


@dataclass(frozen=True)
class RequestLimits:
    """What counting one request found; kept on the Django request as ``request.ratelimit``."""

    hits: tuple[Hit, ...]

    @property
    def degraded(self) -> bool:
        return any(hit.decision.degraded for hit in self.hits)

    @property
    def refused(self) -> tuple[Hit, ...]:
        return tuple(hit for hit in self.hits if not hit.decision.allowed)

    @property
    def retry_after(self) -> int:
        """Seconds until every spent rule has freed up (0 when none is spent)."""
        return max((hit.decision.reset_in for hit in self.refused), default=0)

    def binding(self) -> Hit | None:
        """The rule the headers describe: the spent one that frees up last, else the tightest."""
        if not self.hits:
            return None
        refused = self.refused
        if refused:
            return max(refused, key=lambda hit: hit.decision.reset_in)
        return min(self.hits, key=lambda hit: (hit.decision.remaining, -hit.decision.reset_in))

    def headers(self) -> dict[str, str]:
        hit = self.binding()
        if hit is None or self.degraded:
            # Uncounted while the cache is down: no numbers rather than made-up ones.
            return {}
        decision = hit.decision
        return {
            HEADER_LIMIT: str(decision.limit),
            HEADER_REMAINING: str(decision.remaining),
            HEADER_RESET: str(decision.reset_in),
        }


# --- Keys ----------------------------------------------------------------------------------
def _ip(django_request) -> str:
    """The client IP as the audit context decided it (TRUSTED_PROXY_COUNT), IPv6 per /64."""
    ctx = context.get()
    ip = ctx.ip if ctx is not None and ctx.ip else context.client_ip(django_request.META)
    if not ip:
        return "ip:unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "ip:unknown"
    if address.version == 6:
        mask = getattr(settings, "RATELIMIT_IPV6_MASK", 64)
        return "ip:" + str(ipaddress.ip_network(f"{address}/{mask}", strict=False).network_address)
    mask = getattr(settings, "RATELIMIT_IPV4_MASK", 32)
    if mask != 32:
        return "ip:" + str(ipaddress.ip_network(f"{address}/{mask}", strict=False).network_address)
    return f"ip:{address}"


def _user(user) -> str | None:
    if user is not None and getattr(user, "is_authenticated", False) and user.pk is not None:
        return f"user:{user.pk}"
    return None


# Keys only an app can read from a request body, by rule key kind: ``reader(data)`` is the
# bucket id, or None when the body does not name one. The app registers its reader in its
# AppConfig.ready (sessions_mgmt: "session", the login session of a refresh token it
# signed), so the hub never imports an app.
_key_readers: dict[str, Callable[[object], str | None]] = {}


def register_key_reader(kind: str, reader: Callable[[object], str | None]) -> None:
    """Let rules keyed on ``kind`` find their bucket in a request body with ``reader``.

    Registering a kind again replaces its reader (a reloaded app). A kind nobody
    registered falls back as its rule says (``session``: the client IP).
    """
    _key_readers[kind] = reader


def _session(data) -> str | None:
    """The session id of the refresh token in the body, when its signature is ours.

    The claim only picks the bucket; the refresh view still does every check. A
    token we did not sign (or none) is counted by IP instead, so forging a ``sid``
    cannot open a fresh budget or spend someone else's. The token is read by the
    reader its app registered for the ``session`` kind.
    """
    reader = _key_readers.get("session")
    session_id = reader(data) if reader is not None else None
    return f"session:{session_id}" if session_id else None


def _body_field(data, field: str) -> str | None:
    """A body field, normalised and hashed (HMAC-SHA256): never stored in clear.

    An address (a field named ``email`` or ``*_email``) is keyed by its canonical form,
    the very key its account is looked up by, so no spelling of it opens a fresh budget;
    any other field is trimmed and lower-cased.
    """
    value = data.get(field) if hasattr(data, "get") else None
    if not isinstance(value, str):
        return None
    if field == "email" or field.endswith("_email"):
        value = canonical_email(value)
    else:
        value = value.strip().lower()
    if not value:
        return None
    # Keyed with SECRET_KEY: a hash of a known address cannot be recomputed from outside.
    digest = hmac.new(settings.SECRET_KEY.encode(), f"ratelimit:{field}:{value}".encode("utf-8", "surrogatepass"),
                      hashlib.sha256).hexdigest()[:32]
    return f"{field}:{digest}"


def _has_field(data, field: str) -> bool:
    """Whether the body carries ``field`` with a value (a rule's ``if_body`` condition)."""
    return hasattr(data, "get") and data.get(field) not in (None, "")


def key_for(rule: Rule, *, django_request, user, data_loader) -> str | None:
    """The bucket of this request under ``rule``, or None when the rule does not apply."""
    kind = rule.key
    if kind == "ip":
        return _ip(django_request)
    if kind == "user":
        return _user(user)
    if kind == "user_or_ip":
        return _user(user) or _ip(django_request)
    if kind == "session":
        return _session(data_loader()) or _ip(django_request)
    if kind.startswith("body:"):
        return _body_field(data_loader(), kind[5:])
    return None


# --- The verdict ----------------------------------------------------------------------------
def exception_class():
    return import_string(settings.RATELIMIT_EXCEPTION_CLASS)


def _limits(django_request, pairs: list[tuple[Rule, str]], decisions) -> RequestLimits:
    limits = RequestLimits(hits=tuple(
        Hit(rule=rule, key=key, decision=decision)
        for (rule, key), decision in zip(pairs, decisions, strict=True)
    ))
    django_request.ratelimit = limits
    return limits


def count_request(*, django_request, url_name: str | None, user, data_loader,
                  rules: tuple[Rule, ...] | None = None) -> RequestLimits | None:
    """Count this request against every rule that covers it, in one cache round trip.

    Stores the result on ``django_request.ratelimit`` (the middleware turns it into
    headers and the audit event) and returns it; None when no rule applies.
    Counting happens once per request even if called twice (or after
    :func:`counted_with` counted it during authentication). ``rules`` narrows the
    rules to count (default: every rule matching ``url_name``).
    """
    existing = getattr(django_request, "ratelimit", None)
    if existing is not None:
        return existing
    if not settings.RATELIMIT_ENABLE:
        return None  # off: nothing counted, and no headers that would pretend otherwise
    pairs: list[tuple[Rule, str]] = []
    for rule in rules_for(url_name, django_request.method) if rules is None else rules:
        if rule.if_body and not _has_field(data_loader(), rule.if_body):
            continue
        key = key_for(rule, django_request=django_request, user=user, data_loader=data_loader)
        if key is not None:
            pairs.append((rule, f"{rule.name}:{key}"))
    if not pairs:
        return None
    decisions = consume_many([(key, rule.rate) for rule, key in pairs])
    return _limits(django_request, pairs, decisions)


# Rule keys known as soon as the access token is verified (no request body needed).
_EARLY_KEYS = frozenset({"ip", "user", "user_or_ip"})


@dataclass(frozen=True)
class EarlyCount:
    """A request's rate-limit pairs, worked out during authentication (see :func:`early_count`)."""

    django_request: object
    pairs: tuple[tuple[Rule, str], ...]

    @property
    def items(self) -> list[tuple[str, str]]:
        return [(key, rule.rate) for rule, key in self.pairs]

    def counted_with(self, decisions) -> RequestLimits:
        """Keep the decisions counted elsewhere (in the revocation check's round trip)."""
        return _limits(self.django_request, list(self.pairs), decisions)

    def refund(self) -> None:
        """Take the hits back (authentication refused the request after all): the request
        is then not counted and gets no rate-limit headers, like any refused token."""
        limits = getattr(self.django_request, "ratelimit", None)
        if limits is not None and not limits.degraded:
            refund_many(self.items)
        self.django_request.ratelimit = None


def early_count(*, django_request, view, user_id: str) -> EarlyCount | None:
    """The pairs the throttle would count for this API request to ``view``, when the user
    id from a verified access token is all they need (no rule keyed on the body); else None.

    The authentication class counts them in its own cache round trip, and the
    throttle then finds the request already counted. The user key is the token's
    user, the very user the throttle would see once authentication succeeds.
    """
    from dashtam.ratelimit.throttling import RateLimitRulesThrottle

    if not settings.RATELIMIT_ENABLE or not is_api(django_request):
        return None
    if not any(isinstance(cls, type) and issubclass(cls, RateLimitRulesThrottle)
               for cls in getattr(view, "throttle_classes", ())):
        return None  # a view that opts out of the throttle is not counted early either
    if getattr(django_request, "ratelimit", None) is not None:
        return None
    match = getattr(django_request, "resolver_match", None)
    if match is None:
        return None
    rules = rules_for(match.url_name, django_request.method)
    if not rules or any(rule.key not in _EARLY_KEYS or rule.if_body for rule in rules):
        return None
    pairs = []
    for rule in rules:
        key = f"user:{user_id}" if rule.key in ("user", "user_or_ip") else _ip(django_request)
        pairs.append((rule, f"{rule.name}:{key}"))
    return EarlyCount(django_request=django_request, pairs=tuple(pairs))


def refusal(limits: RequestLimits):
    """The RATELIMIT_EXCEPTION_CLASS instance for a refused request (429 RATE_LIMITED)."""
    from dashtam.observability.metrics import ratelimit_refused

    ratelimit_refused(hit.rule.name for hit in limits.refused)
    return exception_class()(retry_after=limits.retry_after, headers=limits.headers())


def yields_to_lockout(limits: RequestLimits, *, django_request, data_loader) -> bool:
    """True when a refused login names a locked account: the view answers ACCOUNT_LOCKED.

    A rate limit must not hide the lockout. Letting the request through is cheap:
    the lockout refuses before any password is hashed.
    """
    if not any(hit.rule.lockout_first for hit in limits.hits):
        return False
    if any(not hit.rule.lockout_first for hit in limits.refused):
        return False
    data = data_loader()
    email = data.get("email") if hasattr(data, "get") else None
    if not isinstance(email, str) or not email.strip():
        return False
    return account_is_locked(django_request, email.strip())


def account_is_locked(django_request, email: str) -> bool:
    """Whether django-axes holds ``email`` locked (database handler). False on any doubt."""
    if not getattr(settings, "AXES_ENABLED", True):
        return False
    try:
        from axes.handlers.proxy import AxesProxyHandler

        AxesProxyHandler.update_request(django_request)
        # The lockout keys the address by its canonical form (AXES_USERNAME_CALLABLE).
        credentials = {settings.AXES_USERNAME_FORM_FIELD: email, "username": email}
        if AxesProxyHandler.is_locked(django_request, credentials):
            return True
    except Exception:  # noqa: BLE001 - the rate limit stands when the lockout cannot answer
        logger.warning("lockout state unavailable for a rate-limited login")
    return False


# --- After the response ------------------------------------------------------------------------
def record_violations(limits: RequestLimits) -> None:
    """One ``ratelimit.exceeded`` audit event per key per window: the first refused hit.

    Runs after the response, outside the view's transaction, so a rolled-back
    view does not take the event with it. Never raises.
    """
    for hit in limits.hits:
        if not hit.decision.newly_limited:
            continue
        try:
            from audit.services import record

            record(
                action="ratelimit.exceeded",
                outcome="denied",
                target_type="ratelimit.key",
                target_id=hit.key[:64],
                target_repr=f"{hit.rule.name} {hit.rule.rate}",
                extra={
                    "rule": hit.rule.name,
                    "key": hit.key,
                    "rate": hit.rule.rate,
                    "limit": hit.decision.limit,
                    "window_seconds": hit.rule.period,
                    "retry_after": hit.decision.reset_in,
                },
            )
        except Exception:  # noqa: BLE001 - an audit failure must not turn a 429 into a 500
            logger.exception("could not record ratelimit.exceeded")
