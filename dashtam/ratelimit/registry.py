"""The registry of limited keys: what staff see, and unblock, in the admin.

The counter lists a key here the first time it goes over its limit in a window
(``dashtam.ratelimit.counter``, in the same round trip on Redis); this module reads
that list back with each key's live count, and forgets one key's count on request.
Both answer nothing, rather than an error, while the cache is down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dashtam.ratelimit import counter
from dashtam.redis import redis_client


@dataclass(frozen=True)
class LimitedKey:
    key: str
    limit: int
    period: int
    count: int
    reset_in: int


def limited_keys() -> list[LimitedKey]:
    """The keys over their limit in their current window, soonest to free up last.

    Empty when the cache is down.
    """
    cache = counter.cache_backend()
    now = counter._now()
    try:
        client = redis_client(cache)
        if client is not None:
            raw = client.zrangebyscore(cache.make_key(counter.registry_key()), int(now * 1000), "+inf",
                                       withscores=True)
            entries = [(m.decode() if isinstance(m, bytes) else m, score / 1000) for m, score in raw]
        else:
            entries = [(m, exp) for m, exp in (cache.get(counter.registry_key()) or {}).items() if exp > now]
        parsed = []
        for member, expires in entries:
            rate, _, key = member.partition(" ")
            limit, period = counter.parse_rate(rate)
            parsed.append((key, limit, period, expires))
        names = [counter.counter_key(k, lim, per) for k, lim, per, _ in parsed]
        if client is not None:
            values = client.mget([cache.make_key(n) for n in names]) if names else []
            counts = [int(v) if v is not None else 0 for v in values]
        else:
            counts = [(entry[0] if entry else 0) for entry in (cache.get(n) for n in names)]
    except Exception as exc:  # noqa: BLE001 - the admin page shows nothing rather than a 500
        counter.warn_failing_open(exc)
        return []
    out = [
        LimitedKey(key=k, limit=lim, period=per, count=c, reset_in=max(1, math.ceil(exp - now)))
        for (k, lim, per, exp), c in zip(parsed, counts, strict=True)
        if c > lim
    ]
    out.sort(key=lambda item: item.reset_in, reverse=True)
    return out


def limited_key_clear(*, key: str, rate: str) -> bool:
    """Forget one key's count now (staff unblocking a key). Returns False when there was none.

    Idempotent. Raises nothing on a cache outage: it returns False.
    """
    limit, period = counter.parse_rate(rate)
    name = counter.counter_key(key, limit, period)
    cache = counter.cache_backend()
    try:
        client = redis_client(cache)
        if client is not None:
            removed = client.delete(cache.make_key(name))
            client.zrem(cache.make_key(counter.registry_key()), counter.member(key, limit, period))
            return bool(removed)
        with counter.local_lock:
            existed = cache.get(name) is not None
            cache.delete(name)
            registry = cache.get(counter.registry_key()) or {}
            registry.pop(counter.member(key, limit, period), None)
            cache.set(counter.registry_key(), registry, timeout=86400)
            return existed
    except Exception as exc:  # noqa: BLE001
        counter.warn_failing_open(exc)
        return False
