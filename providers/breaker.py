"""A circuit breaker per provider, shared across processes through the cache.

Closed: calls go through; consecutive failures are counted. After
CIRCUIT_BREAKER_FAILURE_THRESHOLD of them the circuit opens: calls are refused
without touching the network for CIRCUIT_BREAKER_RESET_SECONDS. Then it is
half-open: exactly one caller (an atomic ``cache.add``) gets to probe. A success
closes the circuit; a failure opens it again for another period.

When the cache itself is down the breaker stays out of the way (closed): a dead
Redis must not take the providers down with it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from dashtam.redis import default_client, lua_script

logger = logging.getLogger("dashtam.providers")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def _key(provider_key: str, part: str) -> str:
    return f"providers:cb:{provider_key}:{part}"


def _ttl() -> int:
    # Long enough to outlive the open period; short enough to forget stale counts.
    return max(settings.CIRCUIT_BREAKER_RESET_SECONDS * 10, 600)


@dataclass(frozen=True)
class BreakerState:
    state: str
    failures: int
    retry_after: int  # seconds until a probe is allowed (0 unless open)

    def as_dict(self) -> dict:
        return {"state": self.state, "failures": self.failures, "retry_after": self.retry_after}


def state(provider_key: str) -> BreakerState:
    try:
        values = cache.get_many([_key(provider_key, "failures"), _key(provider_key, "opened_at")])
    except Exception:  # noqa: BLE001 - the cache being down is not a provider failure
        return BreakerState(CLOSED, 0, 0)
    failures = int(values.get(_key(provider_key, "failures")) or 0)
    opened_at = values.get(_key(provider_key, "opened_at"))
    if opened_at is None:
        return BreakerState(CLOSED, failures, 0)
    left = settings.CIRCUIT_BREAKER_RESET_SECONDS - (time.time() - float(opened_at))
    if left > 0:
        return BreakerState(OPEN, failures, max(1, int(left + 0.999)))
    return BreakerState(HALF_OPEN, failures, 0)


def allow(provider_key: str) -> tuple[bool, int]:
    """(allowed, retry_after). In half-open, only the first caller is allowed (the probe)."""
    current = state(provider_key)
    if current.state == CLOSED:
        return True, 0
    if current.state == OPEN:
        return False, current.retry_after
    try:
        won = cache.add(_key(provider_key, "probe"), 1, timeout=settings.CIRCUIT_BREAKER_RESET_SECONDS)
    except Exception:  # noqa: BLE001
        return True, 0
    return (True, 0) if won else (False, max(1, settings.CIRCUIT_BREAKER_RESET_SECONDS // 2))


# Whether the circuit was open (KEYS[2] is opened_at), then forget failures, opening and probe.
_CLOSE_SCRIPT = """
local was_open = redis.call('EXISTS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return was_open
"""
CLOSE = lua_script("providers.breaker_close", _CLOSE_SCRIPT)


def record_success(provider_key: str) -> None:
    """Close the circuit and forget the failures: one round trip on Redis (every
    successful provider call ends here, so it is on the hot path)."""
    keys = [_key(provider_key, p) for p in ("failures", "opened_at", "probe")]
    try:
        client = default_client()
        if client is not None:
            was_open = bool(CLOSE(client, keys=[cache.make_key(k) for k in keys]))
        else:
            was_open = cache.get(keys[1]) is not None
            cache.delete_many(keys)
        if was_open:
            logger.info("circuit closed", extra={"provider": provider_key})
    except Exception:  # noqa: BLE001
        logger.warning("circuit breaker state not saved (cache unavailable)")


def record_failure(provider_key: str) -> None:
    try:
        key = _key(provider_key, "failures")
        cache.add(key, 0, timeout=_ttl())
        failures = cache.incr(key)
        half_open = state(provider_key).state == HALF_OPEN
        if failures >= settings.CIRCUIT_BREAKER_FAILURE_THRESHOLD or half_open:
            cache.set(_key(provider_key, "opened_at"), time.time(), timeout=_ttl())
            cache.delete(_key(provider_key, "probe"))
            logger.warning("circuit open", extra={"provider": provider_key, "failures": failures})
            _audit_opened(provider_key, failures, half_open)
    except Exception:  # noqa: BLE001
        logger.warning("circuit breaker state not saved (cache unavailable)")


def _audit_opened(provider_key: str, failures: int, half_open: bool) -> None:
    """One ``provider.circuit.opened`` event per opening (the security overview charts them)."""
    from django.db import transaction

    from audit.services import record

    try:
        with transaction.atomic():  # a savepoint: a failed write leaves the caller's transaction usable
            record(action="provider.circuit.opened", outcome="failure", target_type="providers.provider",
                   target_id=provider_key, target_repr=provider_key,
                   extra={"provider": provider_key, "failures": failures, "after_probe": half_open})
    except Exception:  # noqa: BLE001 - the breaker must open even if the audit write fails
        logger.exception("could not record provider.circuit.opened")


def reset(provider_key: str) -> None:
    record_success(provider_key)
