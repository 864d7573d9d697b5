"""Counting requests against a rate: atomic, one cache round trip, fail-open.

Built on django-ratelimit's vocabulary and settings (rates such as ``20/m`` or
``5/15m``, ``RATELIMIT_ENABLE``, ``RATELIMIT_USE_CACHE``,
``RATELIMIT_EXCEPTION_CLASS``) but not on its counting code, which falls short
in three ways (see docs/ratelimits.md): it answers 403 without Retry-After, it
fails closed (or with a 500) when Redis is down because ``RATELIMIT_FAIL_OPEN``
never sees django-redis' exceptions, and it needs two round trips per counter.

Windows are fixed and start at a key's first hit: that hit sets the counter's
expiry to one period, every hit in the window increments it, and the counter's
remaining TTL is the exact "seconds until the window frees up" that Retry-After
reports. A window never ends in the middle of a burst that started it.

On Redis every counter of a request is incremented, and its TTL read (and set
on a first hit), by one Lua script: one round trip per request, atomic under
any concurrency. Only the first refusal of a key in a window costs a second
round trip, to list the key for staff. On any other cache (the embedded
default's local memory) a process-wide lock makes the count exact within the
process, which is the only web process the embedded default runs.

This module is the counter. Two neighbours build on it: ``counted_read`` counts a
request inside the revocation check's own round trip, and ``registry`` is what the
admin lists and clears (the counter writes that list as it counts).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.cache import caches
from django_ratelimit.core import _split_rate

from dashtam.redis import CacheBackoff, lua_script, redis_client

logger = logging.getLogger("dashtam.ratelimit")

RATE_RE = re.compile(r"^\s*[1-9]\d*/\d*[smhd]?\s*$")
WARNING_INTERVAL = 60.0  # seconds between two "failing open" warnings
_namespace = "rl"  # tests switch it per test, so counters never leak between tests


@dataclass(frozen=True)
class Decision:
    """The outcome of counting one hit against one rate.

    ``reset_in`` is the number of whole seconds (at least 1) until the window
    frees up; on a refusal it is the honest Retry-After. ``degraded`` is True
    when the cache could not be reached and the hit was let through uncounted.
    ``newly_limited`` is True for exactly one hit per key and window: the first
    one over the limit (callers audit that one, not every refusal).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_in: int
    degraded: bool = False
    newly_limited: bool = False


@lru_cache(maxsize=256)
def parse_rate(rate: str) -> tuple[int, int]:
    """``"20/m"`` -> ``(20, 60)``; ``"5/15m"`` -> ``(5, 900)``. Raises ValueError when malformed."""
    if not isinstance(rate, str) or not RATE_RE.match(rate):
        raise ValueError(f"not a rate: {rate!r} (expected for example 20/m, 5/15m, 1000/h)")
    count, seconds = _split_rate(rate.strip())
    if seconds <= 0:
        raise ValueError(f"not a rate: {rate!r} (the period must be positive)")
    return count, seconds


def counter_key(key: str, limit: int, period: int) -> str:
    """The cache key (before the cache's own prefix) of one counter."""
    return f"{_namespace}:{limit}/{period}s:{key}"


def registry_key() -> str:
    """The cache key of the registry of limited keys (what the admin lists)."""
    return f"{_namespace}:registry"


def _now() -> float:
    return time.time()


# --- Fail-open bookkeeping ----------------------------------------------------------
_state_lock = threading.Lock()
_last_warning = 0.0
_suppressed = 0


def _monotonic() -> float:
    return time.monotonic()


# A dead or black-holed Redis would otherwise cost every request a connect timeout: for
# RATELIMIT_CACHE_RETRY_SECONDS after a failure requests are served uncounted at once,
# then one request tries the cache again. (Read through ``_monotonic`` so tests can move it.)
backoff = CacheBackoff("RATELIMIT_CACHE_RETRY_SECONDS", default=5, clock=lambda: _monotonic())


def warn_failing_open(exc: BaseException) -> None:
    """Log that rate limits are failing open, at most once per WARNING_INTERVAL."""
    global _last_warning, _suppressed
    now = _monotonic()
    with _state_lock:
        if _last_warning and now - _last_warning < WARNING_INTERVAL:
            _suppressed += 1
            return
        suppressed, _suppressed = _suppressed, 0
        _last_warning = now
    logger.warning(
        "rate limits are failing open: the cache is unreachable (%s); requests are served "
        "uncounted", type(exc).__name__,
        extra={"event": "ratelimit.fail_open", "error": type(exc).__name__,
               "suppressed_warnings": suppressed},
    )


def reset_state(*, namespace: str = "rl") -> None:
    """Forget the warning throttle and count under ``namespace`` from now on.

    Tests call it with a fresh namespace, so no test inherits another's counters
    (all test requests come from the same IP). Production never calls it.
    """
    global _last_warning, _suppressed, _namespace
    with _state_lock:
        _last_warning = 0.0
        _suppressed = 0
        _namespace = namespace
    backoff.reset()


# --- Redis: one script, one round trip ------------------------------------------------------
# KEYS: the counters, then the keys to read; ARGV[1]: how many counters, then their periods
# in ms. Returns count, TTL in ms for each counter, then the value of each key read (nil
# when absent): a caller that must read other keys anyway (the revocation check) reads
# them in the same round trip.
LUA_CONSUME = """
local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do
  local count = redis.call('INCR', KEYS[i])
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[i], ARGV[i + 1])
    ttl = tonumber(ARGV[i + 1])
  end
  out[2 * i - 1] = count
  out[2 * i] = ttl
end
for i = n + 1, #KEYS do
  out[n + i] = redis.call('GET', KEYS[i])
end
return out
"""


CONSUME = lua_script("ratelimit.consume", LUA_CONSUME)


def member(key: str, limit: int, period: int) -> str:
    return f"{limit}/{period}s {key}"


def _consume_redis(cache, client, items: list[tuple[str, int, int]],
                   read: tuple[str, ...] = ()) -> tuple[list[tuple[int, int]], list]:
    """Count ``items`` and read the raw values of the cache keys ``read``, in one round trip."""
    keys = [cache.make_key(counter_key(k, lim, per)) for k, lim, per in items]
    keys.extend(cache.make_key(name) for name in read)
    argv = [len(items), *(per * 1000 for _, _, per in items)]
    raw = CONSUME(client, keys=keys, args=argv)  # one round trip (EVALSHA)
    counted = 2 * len(items)
    out = [(int(raw[i]), int(raw[i + 1])) for i in range(0, counted, 2)]
    values = list(raw[counted:])
    newly_limited = [i for i, (count, _) in enumerate(out) if count == items[i][1] + 1]
    if newly_limited:
        # Once per key and window: list it for staff (member -> when it frees up, in ms).
        now_ms = int(_now() * 1000)
        registry = cache.make_key(registry_key())
        pipe = client.pipeline(transaction=False)
        pipe.zremrangebyscore(registry, "-inf", now_ms)
        for i in newly_limited:
            key, limit, period = items[i]
            pipe.zadd(registry, {member(key, limit, period): now_ms + out[i][1]})
        pipe.pexpire(registry, 86400 * 1000)
        pipe.execute()
    return out, values


# --- Any other cache: exact within one process --------------------------------------------
local_lock = threading.Lock()


def _consume_local(cache, items: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
    out = []
    with local_lock:
        now = _now()
        registry = None
        for key, limit, period in items:
            name = counter_key(key, limit, period)
            entry = cache.get(name)
            if not entry or entry[1] <= now:
                entry = (0, now + period)
            count, expires = entry[0] + 1, entry[1]
            cache.set(name, (count, expires), timeout=max(1, math.ceil(expires - now)))
            if count == limit + 1:
                if registry is None:
                    registry = {m: exp for m, exp in (cache.get(registry_key()) or {}).items() if exp > now}
                registry[member(key, limit, period)] = expires
            out.append((count, int((expires - now) * 1000)))
        if registry is not None:
            cache.set(registry_key(), registry, timeout=86400)
    return out


# --- Public API (the helpers just below are shared with counted_read and registry) ---------
def cache_backend():
    """The cache the counters live in (RATELIMIT_USE_CACHE)."""
    return caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]


def parse_items(items: list[tuple[str, str]]) -> list[tuple[str, int, int]]:
    parsed = []
    for key, rate in items:
        limit, period = parse_rate(rate)
        parsed.append((key, limit, period))
    return parsed


def decisions_for(parsed, counts) -> list[Decision]:
    return [
        Decision(
            allowed=count <= limit,
            limit=limit,
            remaining=max(0, limit - count),
            reset_in=max(1, math.ceil(ttl_ms / 1000)),
            newly_limited=count == limit + 1,
        )
        for (_, limit, _), (count, ttl_ms) in zip(parsed, counts, strict=True)
    ]


def uncounted(parsed, *, degraded: bool) -> list[Decision]:
    return [Decision(True, limit, limit, period, degraded=degraded) for _, limit, period in parsed]


def consume_many(items: list[tuple[str, str]]) -> list[Decision]:
    """Count one hit against each ``(key, rate)`` pair, in one cache round trip.

    Atomic: N concurrent callers against a limit L are admitted exactly L times
    per window (Redis: one Lua script; other caches: a process lock). Fails open:
    when the cache raises, every pair is allowed with ``degraded=True`` and a
    warning is logged at most once a minute. Not idempotent by design: every call
    is a hit. Keys are shown to staff in the admin, so they must not hold secrets
    (hash a body value before using it in a key).
    """
    parsed = parse_items(items)
    if not parsed:
        return []
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return uncounted(parsed, degraded=False)
    if backoff.resting():
        return uncounted(parsed, degraded=True)
    try:
        cache = cache_backend()
        client = redis_client(cache)
        if client is not None:
            counts, _ = _consume_redis(cache, client, parsed)
        else:
            counts = _consume_local(cache, parsed)
    except Exception as exc:  # noqa: BLE001 - any cache failure fails open, never a 500
        backoff.failed()
        warn_failing_open(exc)
        return uncounted(parsed, degraded=True)
    return decisions_for(parsed, counts)


LUA_REFUND = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('DECR', KEYS[i])
  end
end
return 1
"""
REFUND = lua_script("ratelimit.refund", LUA_REFUND)


def refund_many(items: list[tuple[str, str]]) -> None:
    """Take back one hit of each ``(key, rate)`` pair counted a moment ago (best effort).

    A counter whose window has ended since is left alone (never recreated, so
    never left without an expiry). Never raises.
    """
    parsed = parse_items(items)
    if not parsed or not getattr(settings, "RATELIMIT_ENABLE", True) or backoff.resting():
        return
    try:
        cache = cache_backend()
        client = redis_client(cache)
        if client is not None:
            REFUND(client, keys=[cache.make_key(counter_key(k, lim, per)) for k, lim, per in parsed])
            return
        with local_lock:
            now = _now()
            for key, limit, period in parsed:
                name = counter_key(key, limit, period)
                entry = cache.get(name)
                if entry and entry[1] > now and entry[0] > 0:
                    cache.set(name, (entry[0] - 1, entry[1]), timeout=max(1, math.ceil(entry[1] - now)))
    except Exception as exc:  # noqa: BLE001 - a refund is best effort; the count stands
        backoff.failed()
        warn_failing_open(exc)


def consume(key: str, rate: str) -> Decision:
    """Count one hit for ``key`` against ``rate`` (for example ``"120/m"``).

    See :func:`consume_many` for the guarantees: atomic, one round trip, fails open.
    """
    return consume_many([(key, rate)])[0]
