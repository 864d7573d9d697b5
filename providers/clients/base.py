"""The one small base class every provider client builds on: OAuth 2 + HTTP discipline.

- One ``requests.Session`` per provider and thread (kept: keep-alive, no TLS set-up per call),
  with (connect, read) timeouts from settings.
- Retries with exponential backoff and full jitter, honouring Retry-After, and
  only for idempotent calls (GET). A token request is never retried: a retry
  after a lost response could burn a rotated refresh token.
- Each provider's outbound budget (``<KEY>_RATE_LIMIT``) is counted through
  ``dashtam.ratelimit.counter.consume`` in the shared cache, across processes.
- Each provider's circuit breaker (``providers.breaker``) is consulted before
  every call and told the outcome after it.

Error messages never contain tokens, codes or client secrets.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import logging
import os
import random
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from django.utils import timezone

from dashtam.observability import metrics
from providers import breaker
from providers.exceptions import (
    InvalidGrant,
    ProviderError,
    ProviderRequestRejected,
    ProviderUnavailable,
)

logger = logging.getLogger("dashtam.providers")

RETRYABLE_STATUS = {429, 500, 502, 503, 504}

# Which share of a provider's outbound budget the calls in this context spend: "shared" (users'
# forced refreshes, syncs, code exchanges) or "reserved" (the scheduled token refresh).
_budget_share: contextvars.ContextVar[str] = contextvars.ContextVar("provider_budget_share", default="shared")


@contextmanager
def reserved_budget():
    """Provider calls made inside spend the whole outbound budget, including the share
    (PROVIDER_REFRESH_RESERVED_SHARE) that other calls cannot take: the scheduled token
    refresh keeps working however hard users force refreshes and syncs."""
    reset = _budget_share.set("reserved")
    try:
        yield
    finally:
        _budget_share.reset(reset)


def shared_rate(rate: str, reserved_share: float) -> str | None:
    """The part of ``rate`` that calls outside ``reserved_budget`` may spend, or None when
    nothing is reserved: ``shared_rate("120/m", 0.25) == "90/60s"`` (at least 1)."""
    from dashtam.ratelimit.counter import parse_rate

    if reserved_share <= 0:
        return None
    limit, period = parse_rate(rate)
    return f"{max(1, int(limit * (1 - reserved_share)))}/{period}s"


@dataclass(frozen=True)
class TokenResponse:
    """What a token endpoint returned. ``refresh_token`` is None when not included."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime
    refresh_expires_at: datetime | None
    scope: str = ""

    def __repr__(self) -> str:  # never print the tokens
        return f"TokenResponse(expires_at={self.expires_at!r}, refresh_included={self.refresh_token is not None})"


@dataclass(frozen=True)
class AccountData:
    hash_value: str
    account_number: str
    account_type: str
    currency: str = "USD"
    cash_balance: str | None = None
    market_value: str | None = None
    total_value: str | None = None
    positions: list = field(default_factory=list)


@dataclass(frozen=True)
class TransactionData:
    provider_id: str
    type: str
    date: datetime
    description: str
    amount: str
    currency: str = "USD"
    symbol: str = ""


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) as in RFC 7636."""
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if timezone.is_naive(when):
            # RFC 5322's "-0000" (no zone information) parses naive; HTTP dates are UTC.
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - timezone.now()).total_seconds())


_sessions = threading.local()


class ProviderSession(requests.Session):
    provider_key = "unknown"  # the metrics' label; set by _thread_session
    """A ``requests.Session`` that reads the environment once, when it is made.

    With ``trust_env`` on (requests' default), every request walks ``os.environ``
    for proxy and CA-bundle variables (``merge_environment_settings``), a third of a
    token refresh's HTTP cost. Here ``trust_env`` is off and what it would have read
    is taken once instead: the CA bundle (``REQUESTS_CA_BUNDLE``, then
    ``CURL_CA_BUNDLE``) and the proxies (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``
    with ``NO_PROXY``), the latter decided once per scheme and host. ``~/.netrc`` is
    not read: credentials meant for other hosts must not reach a provider.
    """

    def __init__(self):
        super().__init__()
        self.trust_env = False
        self.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._environ_proxies = requests.utils.getproxies()
        self._proxies_by_origin: dict[tuple[str, str], dict[str, str]] = {}
        self.headers["User-Agent"] = "Dashtam/1.0"

    def proxies_for(self, url: str) -> dict[str, str]:
        """The proxies the environment (as it was when the session was made) names for ``url``."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        proxies = self._proxies_by_origin.get(origin)
        if proxies is None:
            proxies = {}
            if self._environ_proxies and not self._bypass(url):
                proxies = {k: v for k, v in self._environ_proxies.items() if k != "no"}
            self._proxies_by_origin[origin] = proxies
        return proxies

    def _bypass(self, url: str) -> bool:
        # requests' own NO_PROXY matching (hosts, domains, CIDR blocks, ports), against the
        # value read when the session was made rather than the live environment.
        return requests.utils.should_bypass_proxies(url, no_proxy=self._environ_proxies.get("no") or "")

    def request(self, method, url, **kwargs):
        if self._environ_proxies and kwargs.get("proxies") is None:
            kwargs["proxies"] = self.proxies_for(url)
        started = time.perf_counter()
        status = None
        try:
            response = super().request(method, url, **kwargs)
            status = response.status_code
            return response
        finally:
            metrics.provider_call(self.provider_key, started, status)


def _thread_session(key: str) -> requests.Session:
    """One session per provider and thread, kept for the process's life.

    A client is built for every call (``ProviderType.client()``); a new Session each
    time meant a new connection, a new TLS handshake and a new load of the CA bundle
    (about 15 ms of CPU) per token refresh. Kept per thread because a Session is not
    safe to share between threads; its pooled connections are reused (keep-alive).
    """
    by_key = getattr(_sessions, "by_key", None)
    if by_key is None:
        by_key = _sessions.by_key = {}
    session = by_key.get(key)
    if session is None:
        session = by_key[key] = ProviderSession()
        session.provider_key = key
    return session


class BaseClient:
    """OAuth 2 authorization-code client with a hardened HTTP layer.

    Subclasses set ``key`` and the endpoint paths, and parse the provider's data.
    """

    key = "base"
    supports_pkce = False
    authorize_path = "/v1/oauth/authorize"
    token_path = "/v1/oauth/token"
    # Used when a token response does not say when the refresh token dies.
    refresh_token_lifetime = timedelta(days=7)

    def __init__(self, *, base_url: str, client_id: str, client_secret: str, redirect_uri: str,
                 rate_limit: str = ""):
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.rate_limit = rate_limit
        self.session = _thread_session(self.key)

    # --- OAuth ------------------------------------------------------------------------
    def authorization_url(self, *, state: str, code_challenge: str | None = None) -> str:
        params = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "state": state,
        }
        if code_challenge and self.supports_pkce:
            params.update(code_challenge=code_challenge, code_challenge_method="S256")
        return f"{self.base_url}{self.authorize_path}?{urlencode(params)}"

    def exchange_code(self, *, code: str, code_verifier: str | None = None) -> TokenResponse:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        if code_verifier and self.supports_pkce:
            data["code_verifier"] = code_verifier
        return self._token_request(data)

    def refresh(self, *, refresh_token: str) -> TokenResponse:
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _token_request(self, data: dict) -> TokenResponse:
        response = self.request(
            "POST", self.token_path, data=data, auth=(self.client_id, self.client_secret),
            idempotent=False,
        )
        try:
            body = response.json()
            access = body["access_token"]
            expires_in = int(body.get("expires_in") or 1800)
        except (ValueError, KeyError, TypeError):
            raise ProviderError("token response is not valid JSON with an access_token",
                                code="bad_token_response") from None
        now = timezone.now()
        refresh_in = body.get("refresh_token_expires_in")
        return TokenResponse(
            access_token=access,
            refresh_token=body.get("refresh_token") or None,
            expires_at=now + timedelta(seconds=expires_in),
            refresh_expires_at=now + timedelta(seconds=int(refresh_in)) if refresh_in else None,
            scope=str(body.get("scope") or "")[:255],
        )

    # --- HTTP -------------------------------------------------------------------------
    def timeouts(self) -> tuple[float, float]:
        return (settings.HTTP_TIMEOUT_CONNECT, settings.HTTP_TIMEOUT_READ)

    def _spend_budget(self) -> None:
        """Count one call against the provider's outbound budget (all processes share it).

        Calls outside ``reserved_budget`` must first fit in the shared part of it, counted
        on its own key, so that they can never take the scheduled refresh's reserved share;
        a call refused there does not touch the whole budget's counter.
        """
        if not self.rate_limit:
            return
        from dashtam.ratelimit.counter import consume

        if _budget_share.get() != "reserved":
            shared = shared_rate(self.rate_limit, settings.PROVIDER_REFRESH_RESERVED_SHARE)
            if shared is not None:
                decision = consume(f"provider-out:{self.key}:shared", shared)
                if not decision.allowed:
                    raise ProviderUnavailable(
                        f"{self.key}: shared outbound rate limit {shared} reached",
                        retry_after=decision.reset_in, code="provider_rate_limited",
                    )
        decision = consume(f"provider-out:{self.key}", self.rate_limit)
        if not decision.allowed:
            raise ProviderUnavailable(
                f"{self.key}: outbound rate limit {self.rate_limit} reached",
                retry_after=decision.reset_in, code="provider_rate_limited",
            )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        base = settings.HTTP_BACKOFF_BASE_SECONDS
        cap = settings.HTTP_BACKOFF_MAX_SECONDS
        delay = random.uniform(0, min(cap, base * (2 ** attempt)))  # noqa: S311 - jitter, not crypto
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def request(self, method: str, path: str, *, idempotent: bool | None = None,
                access_token: str | None = None, **kwargs) -> requests.Response:
        """One logical call: breaker, budget, timeouts, and retries when idempotent.

        Returns a 2xx response. Raises InvalidGrant (401/400 invalid_grant),
        ProviderRequestRejected (other 4xx), ProviderUnavailable (open circuit,
        spent budget, or a Retry-After longer than we wait) or ProviderError.
        """
        if idempotent is None:
            idempotent = method.upper() in {"GET", "HEAD", "OPTIONS"}
        attempts = 1 + (settings.HTTP_MAX_RETRIES if idempotent else 0)
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        headers = dict(kwargs.pop("headers", {}) or {})
        headers.setdefault("Accept", "application/json")
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        last: ProviderError | None = None
        last_wait: float | None = None
        for attempt in range(attempts):
            allowed, retry_after = breaker.allow(self.key)
            if not allowed:
                raise ProviderUnavailable(f"{self.key}: circuit open", retry_after=retry_after,
                                          code="circuit_open")
            self._spend_budget()
            wait_hint: float | None = None
            try:
                response = self.session.request(method, url, headers=headers, timeout=self.timeouts(),
                                                allow_redirects=False, **kwargs)
            except requests.Timeout:
                breaker.record_failure(self.key)
                last = ProviderError(f"{self.key}: timed out", code="timeout")
            except requests.RequestException as exc:
                breaker.record_failure(self.key)
                last = ProviderError(f"{self.key}: connection failed ({type(exc).__name__})",
                                     code="connection_error")
            else:
                if response.status_code < 400:
                    breaker.record_success(self.key)
                    return response
                if response.status_code in RETRYABLE_STATUS:
                    if response.status_code != 429:
                        breaker.record_failure(self.key)
                    wait_hint = last_wait = _retry_after_seconds(response)
                    code = "rate_limited" if response.status_code == 429 else "server_error"
                    last = ProviderError(f"{self.key}: HTTP {response.status_code}", code=code,
                                         status=response.status_code)
                    if wait_hint is not None and wait_hint > settings.HTTP_RETRY_AFTER_MAX_SECONDS:
                        raise ProviderUnavailable(
                            f"{self.key}: asked to retry after {int(wait_hint)}s",
                            retry_after=wait_hint, code=code,
                        )
                else:
                    # The provider answered: it is up, even if it refused this request.
                    breaker.record_success(self.key)
                    raise self._client_error(response)
            if attempt + 1 < attempts:
                delay = self._backoff(attempt, wait_hint)
                logger.info("provider call retried", extra={
                    "provider": self.key, "path": path, "attempt": attempt + 1, "error": last.code,
                    "delay": round(delay, 3)})
                time.sleep(delay)
        if last is not None and last.code == "rate_limited":
            raise ProviderUnavailable(last.message, retry_after=last_wait or 30.0,
                                      code="rate_limited")
        raise last or ProviderError(f"{self.key}: request failed")

    def _client_error(self, response: requests.Response) -> ProviderError:
        error = ""
        try:
            body = response.json()
            if isinstance(body, dict):
                error = str(body.get("error") or "")
        except ValueError:
            pass
        if error == "invalid_grant":
            return InvalidGrant(f"{self.key}: the grant was refused (HTTP {response.status_code})",
                                status=response.status_code)
        if response.status_code == 401:
            return ProviderRequestRejected(f"{self.key}: access token refused", code="unauthorized",
                                           status=401)
        return ProviderRequestRejected(
            f"{self.key}: HTTP {response.status_code}" + (f" ({error[:40]})" if error else ""),
            status=response.status_code,
        )

    # --- Data (subclasses) ------------------------------------------------------------
    def list_accounts(self, *, access_token: str) -> list[AccountData]:
        raise ProviderRequestRejected(f"{self.key}: accounts are not supported", code="unsupported")

    def list_transactions(self, *, access_token: str, account_hash: str, start: datetime,
                          end: datetime, types: list[str] | None = None) -> list[TransactionData]:
        raise ProviderRequestRejected(f"{self.key}: transactions are not supported", code="unsupported")
