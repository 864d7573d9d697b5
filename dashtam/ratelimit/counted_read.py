"""Counting a request inside another reader's round trip (the revocation check's).

The authentication class reads the revocation cache on every request anyway; when
the rate limiter counts in that same Redis, both are done by one Lua script call,
so counting costs no round trip of its own. Fails open like the counter: a cache
error is reported back to the reader, who decides what its own read means.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches

from dashtam.ratelimit import counter
from dashtam.redis import redis_client


@dataclass(frozen=True)
class CountedRead:
    """What :func:`consume_many_and_read` found: the decisions, and the values read.

    ``values`` maps each key read to its decoded value (None when absent); it is
    None when the cache failed, and ``error`` then says how (the counting itself
    has failed open, as :func:`~dashtam.ratelimit.counter.consume_many` does).
    """

    decisions: list[counter.Decision]
    values: dict | None
    error: BaseException | None = None
    # The same values as the cache stored them (bytes, None when absent), for a caller
    # that writes back only over exactly what it read (the revocation cache's fill).
    raw: dict | None = None


def consume_many_and_read(items: list[tuple[str, str]], read: list[str], *,
                          alias: str = "default") -> CountedRead | None:
    """Count ``items`` as :func:`~dashtam.ratelimit.counter.consume_many` does and read the keys
    ``read`` of the cache ``alias``, together in one Redis round trip.

    For a caller that needs the cache on every request anyway (the revocation
    check reads its entries here), so that counting costs no round trip of its
    own. Returns None when the two cannot share a round trip (the limiter is off
    or resting after a failure, the limiter uses another cache, or the cache is
    not Redis); the caller then reads, and the request is counted, separately.
    """
    parsed = counter.parse_items(items)
    if not parsed or not getattr(settings, "RATELIMIT_ENABLE", True) or counter.backoff.resting():
        return None
    if getattr(settings, "RATELIMIT_USE_CACHE", "default") != alias:
        return None
    cache = caches[alias]
    client = redis_client(cache)
    if client is None:
        return None
    try:
        counts, raw = counter._consume_redis(  # the counter's own Redis path, reads appended
            cache, client, parsed, tuple(read))
        values = {name: (None if value is None else cache.client.decode(value))
                  for name, value in zip(read, raw, strict=True)}
    except Exception as exc:  # noqa: BLE001 - counting fails open; the caller decides about its read
        counter.backoff.failed()
        counter.warn_failing_open(exc)
        return CountedRead(decisions=counter.uncounted(parsed, degraded=True), values=None, error=exc)
    return CountedRead(decisions=counter.decisions_for(parsed, counts), values=values,
                       raw=dict(zip(read, raw, strict=True)))
