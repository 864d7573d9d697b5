"""Selectors for the admin's Security overview: indexed aggregates over a recent window.

Every query filters on ``action IN (...)`` (or one action) and ``created_at >=``
the window's start, which the ``(action, -created_at)`` index answers, and groups
by the hour in SQL; the bucketing into the chart's bars is done here, in Python,
over at most 24 x 30 rows per series. Action codes of features that may not exist
yet (MFA) are found by prefix in the catalogue, so their charts appear by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Q
from django.db.models.fields.json import KT
from django.db.models.functions import TruncHour
from django.utils import timezone

from audit.catalogue import CATALOGUE
from audit.models import AuditEvent


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    span: timedelta
    bucket: timedelta
    bucket_label: str


WINDOWS = {
    "24h": Window("24h", "Last 24 hours", timedelta(hours=24), timedelta(hours=1), "per hour"),
    "7d": Window("7d", "Last 7 days", timedelta(days=7), timedelta(hours=6), "per 6 hours"),
    "30d": Window("30d", "Last 30 days", timedelta(days=30), timedelta(days=1), "per day"),
}
DEFAULT_WINDOW = "24h"

LOGIN_FAILED = "auth.login.failed"
LOCKOUT = "auth.lockout"
REUSE = "session.token_reuse_detected"
NEW_DEVICE = "session.new_device"
RATELIMIT = "ratelimit.exceeded"
PROVIDER_REFRESH = {
    "provider.token.refreshed": "refreshed",
    "provider.token.refresh_failed": "failed",
    "provider.token.reauth_required": "reauth required",
}
BREAKER_OPENED = "provider.circuit.opened"
MFA_PREFIXES = ("mfa.", "auth.mfa", "account.mfa", "admin.mfa")


def mfa_actions() -> list[str]:
    """The catalogue's MFA codes (none until MFA exists)."""
    return sorted(code for code in CATALOGUE if code.startswith(MFA_PREFIXES) or ".mfa." in code)


def failure_actions() -> list[str]:
    """What "failures" means for the top IPs and accounts: failed logins and failed MFA checks."""
    return [LOGIN_FAILED, *(code for code in mfa_actions() if "fail" in code)]


@dataclass
class Series:
    name: str
    values: list[int]
    css: str = ""  # a colour class (audit/admin/overview.css); by position when empty

    @property
    def total(self) -> int:
        return sum(self.values)


@dataclass
class TimeChart:
    title: str
    buckets: list[datetime]
    series: list[Series]
    note: str = ""

    @property
    def total(self) -> int:
        return sum(s.total for s in self.series)


@dataclass
class BarChart:
    title: str
    bars: list[tuple[str, int]]
    note: str = ""


@dataclass
class TopList:
    title: str
    rows: list[tuple[str, int]]
    param: str  # the changelist filter each row links to


@dataclass
class Overview:
    window: Window
    since: datetime
    until: datetime
    time_charts: list[TimeChart] = field(default_factory=list)
    bar_charts: list[BarChart] = field(default_factory=list)
    tops: list[TopList] = field(default_factory=list)


def _buckets(window: Window, now: datetime) -> list[datetime]:
    """Bucket starts, oldest first, aligned to whole hours (UTC), ending with the one holding ``now``."""
    end = now.replace(minute=0, second=0, microsecond=0)
    if window.bucket >= timedelta(days=1):
        end = end.replace(hour=0)
    elif window.bucket > timedelta(hours=1):
        step = int(window.bucket.total_seconds() // 3600)
        end = end.replace(hour=end.hour - end.hour % step)
    count = int(window.span / window.bucket)
    return [end - window.bucket * i for i in range(count - 1, -1, -1)]


def _hourly(actions: list[str], since: datetime, *, by_action: bool = True, outcome: str | None = None):
    """{(action, hour): count} for the given actions since ``since``: one indexed GROUP BY."""
    if not actions:
        return {}
    qs = AuditEvent.objects.filter(action__in=actions, created_at__gte=since)
    if outcome:
        qs = qs.filter(outcome=outcome)
    rows = (qs.annotate(hour=TruncHour("created_at")).order_by()
            .values("action", "hour").annotate(n=Count("id")).values_list("action", "hour", "n"))
    return {(action, hour): n for action, hour, n in rows}


def _fold(counts: dict, buckets: list[datetime], window: Window, actions: list[str]) -> list[int]:
    values = [0] * len(buckets)
    first = buckets[0]
    for (action, hour), n in counts.items():
        if action not in actions or hour is None:
            continue
        if timezone.is_naive(hour):
            hour = hour.replace(tzinfo=UTC)
        index = int((hour - first) / window.bucket)
        if 0 <= index < len(values):
            values[index] += n
    return values


def security_overview(*, window_key: str = DEFAULT_WINDOW, now: datetime | None = None) -> Overview:
    """The overview's charts and top lists for one window (24h, 7d or 30d)."""
    window = WINDOWS.get(window_key) or WINDOWS[DEFAULT_WINDOW]
    now = now or timezone.now()
    buckets = _buckets(window, now)
    since = buckets[0]
    overview = Overview(window=window, since=since, until=now)

    mfa = mfa_actions()
    actions = [LOGIN_FAILED, LOCKOUT, REUSE, NEW_DEVICE, *PROVIDER_REFRESH, BREAKER_OPENED, *mfa]
    counts = _hourly(actions, since)

    def series(name, codes, css=""):
        return Series(name, _fold(counts, buckets, window, list(codes)), css)

    overview.time_charts.append(TimeChart(
        f"Failed logins and lockouts ({window.bucket_label})", buckets,
        [series("failed logins", [LOGIN_FAILED], "s0"), series("lockouts", [LOCKOUT], "s1")]))
    overview.time_charts.append(TimeChart(
        f"Refresh-token reuse detections ({window.bucket_label})", buckets, [series("reuse detections", [REUSE])],
        note="Each one revoked a whole session."))
    overview.time_charts.append(TimeChart(
        f"New-device logins ({window.bucket_label})", buckets,
        [series("new-device logins", [NEW_DEVICE], "s4")]))
    overview.time_charts.append(TimeChart(
        f"Provider token refreshes and circuit-breaker openings ({window.bucket_label})", buckets,
        [*(series(label, [code], css) for (code, label), css in zip(PROVIDER_REFRESH.items(), ("ok", "s2", "s0"),
                                                                    strict=True)),
         series("breaker openings", [BREAKER_OPENED], "s3")]))
    if mfa:
        overview.time_charts.append(TimeChart(
            f"MFA events ({window.bucket_label})", buckets,
            [series(code.split(".", 1)[-1], [code]) for code in mfa]))
    else:
        overview.time_charts.append(TimeChart(
            f"MFA events ({window.bucket_label})", buckets, [], note="No MFA action codes exist yet."))

    rules = (AuditEvent.objects.filter(action=RATELIMIT, created_at__gte=since)
             .annotate(rule=KT("extra__rule")).order_by().values("rule").annotate(n=Count("id"))
             .order_by("-n").values_list("rule", "n"))
    overview.bar_charts.append(BarChart(
        "Rate-limit refusals by rule", [(rule or "?", n) for rule, n in rules],
        note="One event per client key and window: the first refusal, not every 429 "
             "(the metrics count every one)."))

    failures = AuditEvent.objects.filter(action__in=failure_actions(), created_at__gte=since).filter(
        Q(outcome="failure") | Q(outcome="denied"))
    top_ips = (failures.exclude(ip=None).order_by().values("ip").annotate(n=Count("id"))
               .order_by("-n", "ip").values_list("ip", "n")[:10])
    top_accounts = (failures.exclude(actor_email="").order_by().values("actor_email").annotate(n=Count("id"))
                    .order_by("-n", "actor_email").values_list("actor_email", "n")[:10])
    overview.tops.append(TopList("Top 10 IP addresses by failed logins", list(top_ips), "ip"))
    overview.tops.append(TopList("Top 10 accounts by failed logins", list(top_accounts), "actor_email"))
    return overview
