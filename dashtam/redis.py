"""Redis plumbing every app shares: the raw client, the errors, the Lua scripts, the back-off.

- :func:`redis_client` is the raw redis-py client behind a django-redis cache, for the
  paths that need more than Django's cache API (a Lua script, a pipeline, MGET of raw
  values). It is None for any other cache (the embedded default's local memory), and
  callers then take their plain-cache path.
- :data:`CACHE_ERRORS` are the exceptions a Redis-backed cache raises when Redis is
  unreachable or refuses a command. Code that must not fail open catches exactly these.
- :func:`lua_script` registers a Lua script once, by name. Calling the script is one
  EVALSHA; the first call on a server that does not know it yet loads it and retries.
- :class:`CacheBackoff` remembers a recent cache failure, so that a dead or black-holed
  Redis costs one timeout every few seconds instead of one per request.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import NoScriptError, RedisError

CACHE_ERRORS: tuple[type[BaseException], ...] = (ConnectionInterrupted, RedisError)


def redis_client(cache):
    """The raw redis-py client behind a django-redis cache backend, or None for any other cache.

    Pass the backend (``caches[alias]``), not ``django.core.cache.cache``, which is a proxy.
    """
    client = getattr(cache, "client", None)
    get_client = getattr(client, "get_client", None)
    if get_client is None or not type(cache).__module__.startswith("django_redis"):
        return None
    return get_client(write=True)


def default_client():
    """The raw client behind the ``default`` cache when it is Redis, else None."""
    return redis_client(caches["default"])  # the backend itself: ``cache`` is a proxy to it


# --- Lua scripts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LuaScript:
    """A registered Lua script: its name (for readers and tests), its source and its SHA1."""

    name: str
    source: str
    sha: str

    def __call__(self, client, *, keys: Sequence = (), args: Sequence = ()):
        """Run the script on ``client``: one EVALSHA, loading the script on the first NOSCRIPT.

        Atomic on the server, like every Lua script. Raises what the client raises
        (one of :data:`CACHE_ERRORS` when Redis is unreachable).
        """
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            # A server that restarted, or one this process has not talked to yet.
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)


_scripts: dict[str, LuaScript] = {}
_scripts_lock = threading.Lock()


def lua_script(name: str, source: str) -> LuaScript:
    """Register the Lua script ``source`` under ``name`` and return it (call it at import time).

    Registering the same name with the same source again returns the same script;
    with another source it raises ValueError, so two modules cannot silently share a name.
    """
    sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
    with _scripts_lock:
        existing = _scripts.get(name)
        if existing is not None:
            if existing.sha != sha:
                raise ValueError(f"a different Lua script is already registered as {name!r}")
            return existing
        script = _scripts[name] = LuaScript(name=name, source=source, sha=sha)
    return script


def registered_scripts() -> dict[str, LuaScript]:
    """Every registered script by name (a copy)."""
    with _scripts_lock:
        return dict(_scripts)


# --- Back-off after a failure --------------------------------------------------------------
class CacheBackoff:
    """Process-local memory of a recent cache failure.

    After :meth:`failed`, :meth:`resting` is True for the number of seconds the setting
    ``setting`` names (``default`` when it is not set): callers skip the cache at once
    (fail open, or go to the database) instead of paying a connect timeout on every
    request, then one request tries the cache again. ``clock`` is the monotonic clock
    (tests pass their own).
    """

    def __init__(self, setting: str, *, default: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.setting = setting
        self.default = default
        self._clock = clock
        self._lock = threading.Lock()
        self.down_until = 0.0  # monotonic time before which the cache is not retried

    def retry_seconds(self) -> float:
        if self.default is None:
            return float(getattr(settings, self.setting))
        return float(getattr(settings, self.setting, self.default))

    def resting(self) -> bool:
        """True while a recent failure says not to try the cache yet."""
        return self.down_until > self._clock()

    def failed(self) -> None:
        """The cache just failed: rest for the configured number of seconds from now."""
        with self._lock:
            self.down_until = self._clock() + self.retry_seconds()

    def reset(self) -> None:
        """Forget any failure (tests, and after a settings change)."""
        with self._lock:
            self.down_until = 0.0
