"""Cache timings: a redis-py client class that times each command, and a timed local-memory cache.

django-redis builds its clients from ``OPTIONS["REDIS_CLIENT_CLASS"]``, so the timer
also sees what the rate limiter, the breaker and the revocation cache send through
the raw client (scripts included), without wrapping the cache backend itself.
"""

from __future__ import annotations

import time

import redis
from django.core.cache.backends.locmem import LocMemCache

from dashtam.observability.metrics import CACHE_OP, never_raises

_KNOWN = frozenset({
    "GET", "SET", "SETEX", "SETNX", "DEL", "MGET", "MSET", "INCR", "INCRBY", "DECR", "DECRBY", "EXISTS",
    "EXPIRE", "PEXPIRE", "TTL", "PTTL", "EVALSHA", "EVAL", "SCRIPT LOAD", "KEYS", "SCAN", "PING", "LLEN",
    "ZADD", "ZRANGE", "ZREM", "HGET", "HSET", "TOUCH", "PERSIST", "FLUSHDB", "INFO",
})


class TimedRedis(redis.Redis):
    """redis.Redis whose every command is observed in dashtam_cache_operation_duration_seconds."""

    def execute_command(self, *args, **options):
        started = time.perf_counter()
        try:
            return super().execute_command(*args, **options)
        finally:
            _observe(str(args[0]).upper() if args else "", started)


@never_raises
def _observe(name: str, started: float) -> None:
    CACHE_OP.labels(name if name in _KNOWN else "OTHER").observe(time.perf_counter() - started)


def _timed(method_name: str):
    method = getattr(LocMemCache, method_name)

    def wrapper(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            _observe(method_name.upper(), started)

    wrapper.__name__ = method_name
    wrapper.__doc__ = method.__doc__
    return wrapper


class TimedLocMemCache(LocMemCache):
    """The embedded default's local-memory cache, timed per operation like the Redis client."""


for _name in ("get", "set", "add", "delete", "touch", "incr", "has_key", "get_many", "set_many",
              "delete_many", "clear"):
    setattr(TimedLocMemCache, _name, _timed(_name))
