"""Every Prometheus metric the service exposes, and the hooks that feed them.

Domain counters come from one place where possible: every security event is
audited, so ``audit_event()`` (called by ``audit.services.record``) derives logins
by outcome, refresh rotations, reuse detections and lockouts from the action code.
Rate-limit refusals are counted where the 429 is made (every refusal, while the
audit trail keeps one event per key and window). Request, database, cache,
provider-call and Celery metrics have hooks of their own, below. Gauges that
describe the present (circuit breakers, refresh lag, queue depth) are read at
scrape time by ``collectors.StateCollector``, never kept in a process.

Under gunicorn, set PROMETHEUS_MULTIPROC_DIR (before start) so every worker
process writes its samples there and the scrape adds them up
(prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import functools
import logging
import time

from django.conf import settings
from prometheus_client import Counter, Histogram

PREFIX = "dashtam"

logger = logging.getLogger("dashtam.metrics")


def never_raises(fn):
    """Metrics must never fail the work they measure: an error is logged, and the work goes on."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception:
            logger.warning("metrics: %s failed", fn.__name__, exc_info=True)
            return None

    return wrapper

# Latency buckets for requests, provider calls and tasks (seconds).
_SLOW = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Database and cache operations are sub-millisecond when healthy.
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

HTTP_REQUESTS = Counter(
    f"{PREFIX}_http_requests", "HTTP requests served, by route pattern, method and status.",
    ["route", "method", "status"])
HTTP_LATENCY = Histogram(
    f"{PREFIX}_http_request_duration_seconds", "Time to answer an HTTP request, by route pattern and status.",
    ["route", "status"], buckets=_SLOW)
DB_QUERY = Histogram(
    f"{PREFIX}_db_query_duration_seconds", "Time per database statement, by database alias and verb.",
    ["alias", "verb"], buckets=_FAST)
CACHE_OP = Histogram(
    f"{PREFIX}_cache_operation_duration_seconds", "Time per cache (Redis) command, by command.",
    ["command"], buckets=_FAST)
AUDIT_EVENTS = Counter(
    f"{PREFIX}_audit_events", "Audit events written, by action code and outcome.", ["action", "outcome"])
LOGINS = Counter(
    f"{PREFIX}_logins", "Password logins, by outcome (success, failure, denied, unverified).", ["outcome"])
REFRESH_ROTATIONS = Counter(f"{PREFIX}_refresh_rotations", "Refresh tokens rotated for a new token pair.")
REUSE_DETECTIONS = Counter(
    f"{PREFIX}_token_reuse_detections", "Rotated refresh tokens presented again (the session was revoked).")
LOCKOUTS = Counter(f"{PREFIX}_lockouts", "Accounts or client IPs locked after too many failed logins.")
RATELIMIT_REFUSALS = Counter(
    f"{PREFIX}_ratelimit_refusals", "Requests refused with 429 RATE_LIMITED, by the rule that refused them.",
    ["rule"])
PROVIDER_CALLS = Counter(
    f"{PREFIX}_provider_calls", "HTTP calls to brokerage providers, by provider and outcome "
    "(2xx, 4xx, 429, 5xx, error).", ["provider", "outcome"])
PROVIDER_LATENCY = Histogram(
    f"{PREFIX}_provider_call_duration_seconds", "Time per HTTP call to a provider.", ["provider"],
    buckets=_SLOW)
PROVIDER_REFRESHES = Counter(
    f"{PREFIX}_provider_token_refreshes", "Provider token refreshes, by outcome "
    "(refreshed, failed, reauth_required).", ["outcome"])
CELERY_TASKS = Counter(
    f"{PREFIX}_celery_tasks", "Celery tasks run, by task name and final state "
    "(SUCCESS, FAILURE, RETRY, ...).", ["task", "state"])
CELERY_TASK_LATENCY = Histogram(
    f"{PREFIX}_celery_task_duration_seconds", "Time a Celery task ran, by task name.", ["task"], buckets=_SLOW)

# Action codes that feed a dedicated counter besides dashtam_audit_events_total.
_LOGIN_ACTIONS = {"auth.login.succeeded": "success", "auth.login.failed": None, "auth.login.unverified": "unverified"}
_PROVIDER_REFRESH_ACTIONS = {
    "provider.token.refreshed": "refreshed",
    "provider.token.refresh_failed": "failed",
    "provider.token.reauth_required": "reauth_required",
}


def enabled() -> bool:
    return settings.METRICS_ENABLED


@never_raises
def audit_event(action: str, outcome: str) -> None:
    """Count one audit event (called by ``audit.services.record`` for every event).

    Counted when it is written, not on commit: an on-commit callback per event would
    cost every request a closure and show up among the callbacks a transaction runs.
    An event whose transaction then rolls back (rare) is counted all the same.
    """
    if not settings.METRICS_ENABLED:
        return
    AUDIT_EVENTS.labels(action, outcome).inc()
    if action in _LOGIN_ACTIONS:
        LOGINS.labels(_LOGIN_ACTIONS[action] or outcome).inc()
    elif action == "session.refreshed":
        REFRESH_ROTATIONS.inc()
    elif action == "session.token_reuse_detected":
        REUSE_DETECTIONS.inc()
    elif action == "auth.lockout":
        LOCKOUTS.inc()
    elif action in _PROVIDER_REFRESH_ACTIONS:
        PROVIDER_REFRESHES.labels(_PROVIDER_REFRESH_ACTIONS[action]).inc()


@never_raises
def ratelimit_refused(rules) -> None:
    """Count a 429: one sample per rule that was spent for this request."""
    if not settings.METRICS_ENABLED:
        return
    for name in rules:
        RATELIMIT_REFUSALS.labels(name).inc()


@never_raises
def provider_call(provider: str, started: float, status: int | None) -> None:
    """Count one HTTP call to a provider (``status`` None: no answer, a timeout or a connection error)."""
    if not settings.METRICS_ENABLED:
        return
    if status is None:
        outcome = "error"
    elif status == 429:
        outcome = "429"
    else:
        outcome = f"{status // 100}xx"
    PROVIDER_CALLS.labels(provider, outcome).inc()
    PROVIDER_LATENCY.labels(provider).observe(time.perf_counter() - started)


# --- Database statements ------------------------------------------------------------------------
_VERBS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT",
                    "RELEASE", "SET", "WITH"})


class QueryTimer:
    """A ``connection.execute_wrappers`` entry that times every statement on that connection."""

    def __init__(self, alias: str):
        self.alias = alias

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            _observe_query(self.alias, sql, started)


@never_raises
def _observe_query(alias: str, sql, started: float) -> None:
    head = str(sql).lstrip()[:10].split(None, 1)
    verb = head[0].upper() if head else ""
    DB_QUERY.labels(alias, verb if verb in _VERBS else "OTHER").observe(time.perf_counter() - started)


def install_query_timer(sender, connection, **kwargs) -> None:
    """``connection_created`` receiver: add the timer once per connection object."""
    if not settings.METRICS_ENABLED:
        return
    if not any(isinstance(w, QueryTimer) for w in connection.execute_wrappers):
        connection.execute_wrappers.append(QueryTimer(connection.alias))


# --- Celery -----------------------------------------------------------------------------------------
_task_started: dict[str, float] = {}


@never_raises
def task_prerun(task_id=None, **kwargs) -> None:
    if settings.METRICS_ENABLED and task_id:
        _task_started[task_id] = time.perf_counter()


@never_raises
def task_postrun(task_id=None, task=None, state=None, **kwargs) -> None:
    if not settings.METRICS_ENABLED:
        return
    name = getattr(task, "name", None) or "unknown"
    CELERY_TASKS.labels(name, state or "UNKNOWN").inc()
    started = _task_started.pop(task_id, None) if task_id else None
    if started is not None:
        CELERY_TASK_LATENCY.labels(name).observe(time.perf_counter() - started)


def connect_signals() -> None:
    """Hook the database and Celery signals (once, from the app's ``ready()``)."""
    from celery import signals as celery_signals
    from django.db.backends.signals import connection_created

    connection_created.connect(install_query_timer, dispatch_uid="dashtam.metrics.query_timer")
    celery_signals.task_prerun.connect(task_prerun, dispatch_uid="dashtam.metrics.task_prerun", weak=False)
    celery_signals.task_postrun.connect(task_postrun, dispatch_uid="dashtam.metrics.task_postrun", weak=False)
