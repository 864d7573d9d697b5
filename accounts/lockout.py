"""Login lockout on top of django-axes (database handler: the lock lives in the database).

Two thresholds, either of which locks:

* per account: ``AXES_FAILURE_LIMIT`` (LOCKOUT_FAILURE_LIMIT, 10) failures for one
  email address, from anywhere;
* per client IP: LOCKOUT_IP_FAILURE_LIMIT (50) failures from one IP across every
  address, high enough that an office behind one NAT is not locked out by one person.

Failures count while they are younger than ``AXES_COOLOFF_TIME`` (LOCKOUT_COOLOFF_SECONDS).
Attempts during a lock are refused without being counted, so a lock ends exactly
one cool-off after the failure that set it, and Retry-After tells the real time left.

Through DRF and simplejwt axes only ever shows "No active account" (axes #877, #570):
our login service reads ``request.axes_locked_out`` after ``authenticate()`` and
answers 429 ACCOUNT_LOCKED itself; ``lockout_response`` (AXES_LOCKOUT_CALLABLE)
keeps that answer and gives every other locked request (the admin login) a 429 too.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Q
from django.http import HttpResponse
from django.utils import timezone

from accounts.email_address import MAX_LENGTH as EMAIL_MAX_LENGTH
from accounts.email_address import canonical_email
from dashtam import context as request_context
from dashtam.api.problems import problem_response
from dashtam.context import client_ip_for_request

LOCKED_DETAIL = "Too many failed login attempts. Try again later."


def failure_limit(request=None, credentials=None) -> int:
    """AXES_FAILURE_LIMIT: LOCKOUT_FAILURE_LIMIT, read when it is needed."""
    return settings.LOCKOUT_FAILURE_LIMIT


def cool_off(request=None) -> timedelta:
    """AXES_COOLOFF_TIME: LOCKOUT_COOLOFF_SECONDS, read when it is needed."""
    return timedelta(seconds=settings.LOCKOUT_COOLOFF_SECONDS)


def axes_username(request, credentials) -> str | None:
    """AXES_USERNAME_CALLABLE: the canonical email, the very key the login looks the account up by.

    So every spelling that reaches an account (case, ``ſ`` for ``s``, full-width letters)
    counts toward that account's one counter, from the API and the admin login alike.
    """
    credentials = credentials or {}
    raw = credentials.get("email") or credentials.get("username") or ""
    if not isinstance(raw, str):
        return None
    email = canonical_email(raw)
    if len(email) > EMAIL_MAX_LENGTH:
        # Longer than any account's address (NFKC can lengthen junk): still one stable
        # key, and one that fits axes' column.
        return "sha256:" + hashlib.sha256(email.encode()).hexdigest()
    return email or None


@dataclass(frozen=True)
class LockState:
    account_failures: int
    ip_failures: int
    account_locked_until: datetime | None
    ip_locked_until: datetime | None
    now: datetime
    # Whether the address has any attempt on record, of any age (something for a login to reset).
    account_has_attempts: bool = False

    @property
    def account_locked(self) -> bool:
        return self.account_locked_until is not None

    @property
    def ip_locked(self) -> bool:
        return self.ip_locked_until is not None

    @property
    def locked(self) -> bool:
        return self.account_locked or self.ip_locked

    @property
    def retry_after(self) -> int:
        """Whole seconds until every lock that applies has ended (0 when not locked)."""
        ends = [t for t in (self.account_locked_until, self.ip_locked_until) if t is not None]
        if not ends:
            return 0
        return max(1, math.ceil((max(ends) - self.now).total_seconds()))


def _locked_until(rows, *, limit: int, period: timedelta) -> datetime | None:
    """When the failures still counting drop below ``limit`` (None: not locked).

    ``rows`` are (attempt_time, failures) of one counter, each row ageing out
    one cool-off after its last failure. Newest first, the row whose failures
    bring the total to the limit is the one whose expiry ends the lock.
    """
    total = 0
    for attempt_time, failures in sorted(rows, key=lambda r: r[0], reverse=True):
        total += failures
        if total >= limit:
            return attempt_time + period
    return None


def lockout_state(*, username: str | None, ip: str | None, now: datetime | None = None) -> LockState:
    """The lock state of an email address and a client IP. Reads only, in one query."""
    now = now or timezone.now()
    period = get_cool_off()
    since = now - period
    match = Q()
    if username:
        match |= Q(username=username)  # any age: tells the login whether there is anything to reset
    if ip:
        match |= Q(ip_address=ip, attempt_time__gte=since)
    rows = list(AccessAttempt.objects.filter(match).values_list(
        "attempt_time", "failures_since_start", "username", "ip_address")) if match else []
    account_rows = [(t, f) for t, f, u, _ in rows if username and u == username and t >= since]
    ip_rows = [(t, f) for t, f, _, a in rows if ip and a == ip and t >= since]
    return LockState(
        account_failures=sum(f for _, f in account_rows),
        ip_failures=sum(f for _, f in ip_rows),
        account_locked_until=_locked_until(account_rows, limit=get_failure_limit(None, None), period=period),
        ip_locked_until=_locked_until(ip_rows, limit=settings.LOCKOUT_IP_FAILURE_LIMIT, period=period),
        now=now,
        account_has_attempts=bool(username) and any(u == username for _, _, u, _ in rows),
    )


def lockout_state_for_request(request, credentials=None) -> LockState:
    ip = getattr(request, "axes_ip_address", None) or client_ip_for_request(request)
    return lockout_state(username=axes_username(request, credentials), ip=ip)


class LockoutHandler(AxesDatabaseHandler):
    """The axes database handler with a second, per-IP threshold.

    Axes compares ``get_failures`` with ``AXES_FAILURE_LIMIT``. We report the
    account's failures, or the limit itself once the client IP has reached
    LOCKOUT_IP_FAILURE_LIMIT, so either threshold locks the login.

    Before the password is checked, a client that has signed in to the account before
    (``known_client``) is not held by the IP lock, only by the account's: its right
    password signs in. After a failed password (``user_login_failed``) the IP lock
    holds for everyone, so a wrong password from a known client is counted toward the
    account and answered 429 like anyone's, and the answer tells nothing about history.
    """

    def get_failures(self, request, credentials: dict | None = None) -> int:
        state = lockout_state(
            username=get_client_username(request, credentials),
            ip=request.axes_ip_address,
            now=request.axes_attempt_time,
        )
        # Whether this address had any attempt on record before this login (see user_logged_in).
        request.dashtam_account_attempts = state.account_has_attempts
        if state.ip_locked and (getattr(request, "dashtam_counting_failure", False) or not known_client(
                request, username=get_client_username(request, credentials))):
            return max(state.account_failures, get_failure_limit(request, credentials))
        return state.account_failures

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        """Axes' counting, then, for the failure that has just set a lock, the notice.

        Axes sets ``axes_failures_since_start`` only when it counted this failure (not
        during a lock), so the owner is told once per lock, whichever form failed.
        """
        if request is not None:
            # A known client gets past the IP lock to have its password checked; a wrong one is
            # counted toward the account and then refused by the IP lock like anyone's.
            request.dashtam_counting_failure = True
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or not getattr(request, "axes_locked_out", False) \
                or getattr(request, "axes_failures_since_start", None) is None:
            return
        username = get_client_username(request, credentials)
        if username and not username.startswith("sha256:"):
            from accounts.services import lockout_notice

            lockout_notice(request=request, email=username)

    def user_logged_in(self, sender, request, user, **kwargs):
        """AXES_RESET_ON_SUCCESS without axes' extra reads on every login.

        Axes' database handler deletes the account's attempts and, on the way, every
        expired attempt of every account: two SELECTs and their DELETEs per login.
        Here the account's attempts are deleted only when the lock check of this
        very login found some, and the expired ones of all accounts go in the daily
        ``accounts-cleanup-tokens`` task (``attempts_cleanup``). With an access log or
        attempt expirations configured, axes' own handler runs.
        """
        if (not settings.AXES_DISABLE_ACCESS_LOG or getattr(settings, "AXES_USE_ATTEMPT_EXPIRATION", False)
                or not settings.AXES_RESET_ON_SUCCESS):
            return super().user_logged_in(sender, request, user, **kwargs)
        if getattr(request, "dashtam_account_attempts", True):
            username = axes_username(request, {"email": user.get_username()})
            if username:
                AccessAttempt.objects.filter(username=username).delete()
        return None


def known_client(request, *, username: str | None) -> bool:
    """Whether this client has signed in to the account ``username`` before (docs/accounts.md,
    "Known clients pass the IP lock"): a login session of that account was started from
    the same IP address and User-Agent. Asked only while the client IP is locked; the
    answer is kept on the request.
    """
    known = getattr(request, "dashtam_known_client", None)
    if known is not None:
        return known
    known = False
    ip = getattr(request, "axes_ip_address", None)
    if username and ip:
        from accounts.models import User
        from sessions_mgmt.selectors import session_client_known

        ctx = request_context.get()
        user_agent = ctx.user_agent if ctx is not None else (request.META.get("HTTP_USER_AGENT", "") or "")[:512]
        user_id = User.objects.filter(email=username, is_active=True).values_list("pk", flat=True).first()
        known = user_id is not None and session_client_known(user_id=user_id, ip=ip, user_agent=user_agent)
    request.dashtam_known_client = known
    return known


def attempts_cleanup() -> int:
    """Delete the attempts older than one cool-off (they no longer count); returns how many."""
    deleted, _ = AccessAttempt.objects.filter(attempt_time__lt=timezone.now() - get_cool_off()).delete()
    return deleted


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with Retry-After; problem+json under /api/.

    The login view already answered 429 ACCOUNT_LOCKED with the exact time left:
    that response is kept as it is.
    """
    if original_response is not None and original_response.status_code == 429 \
            and original_response.has_header("Retry-After"):
        return original_response
    retry_after = str(max(1, lockout_state_for_request(request, credentials).retry_after))
    if request.path.startswith("/api/"):
        return problem_response(request, code="ACCOUNT_LOCKED", detail=LOCKED_DETAIL,
                                headers={"Retry-After": retry_after})
    response = HttpResponse(LOCKED_DETAIL, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = retry_after
    return response
