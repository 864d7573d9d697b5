"""The revocation cache: what the authentication class asks on every request.

Three facts decide whether an access token still works: its session's state
(revoked? expired?), its user's row (active? minimum token version?) and the
global minimum token version. All three live in the cache and are read in ONE
round trip (``get_many``); a miss is filled from the database, which is the
source of truth.

It never fails open:
- A cache error (Redis down, timeout) sends the request to the database. Only
  the redis / django-redis exceptions are caught, nothing broader.
- Entries saying "active" live briefly (``REVOCATION_CACHE_SECONDS``); entries
  saying "revoked" live at least as long as an access token can.
- Every entry is tagged with a cache generation. When a process could not
  write a revocation to the cache (Redis unreachable), it changes the
  generation as soon as the cache answers again, which turns every entry
  written before into a miss.
- A fill (what a request read from the database, written back) is a
  compare-and-set against what that request's lookup found: the generation
  and each key's exact stored value (absent, an older generation's entry, or a
  CHANGED marker). One Lua script on Redis; a process lock around every write on
  the local-memory cache. A revocation or a change that landed in between (a
  "revoked" pin, a new marker, a new generation) makes the fill write nothing,
  so state read before a revocation committed can never replace it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import pickle
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.cache import cache, caches
from django.db import transaction
from django.utils import timezone

from dashtam.ratelimit.counted_read import consume_many_and_read
from dashtam.redis import CACHE_ERRORS, CacheBackoff, lua_script, redis_client

logger = logging.getLogger("dashtam.sessions")

GEN_KEY = "sessions:gen"
GLOBAL_VERSION_KEY = "sessions:gver"
# Written over a user or global-version entry once a change of it commits, unique per
# write (CHANGED + ":" + a random id). It reads as a miss; a fill replaces it only if it
# is still the very marker its lookup read: a request that read the row before a second
# change committed finds that change's new marker and writes nothing.
CHANGED = "changed"


def changed_marker() -> str:
    return f"{CHANGED}:{uuid.uuid4().hex}"


def session_key(session_id) -> str:
    return f"sessions:s:{session_id}"


def user_key(user_id) -> str:
    return f"sessions:u:{user_id}"


# Process-local: after a cache error, skip the cache for a few seconds instead of
# paying a timeout on every request; remember to bump the generation afterwards.
_backoff = CacheBackoff("REVOCATION_CACHE_RETRY_SECONDS")
_lock = threading.Lock()
_state = {"pending_generation_bump": False}
# On a cache that is not Redis (the embedded default's local memory, one process), every
# write of this module holds this lock, which makes a fill's compare-and-set atomic.
_local_write_lock = threading.RLock()


def _backend():
    return caches["default"]


def _writes_exclusive():
    """The lock every write takes on a local cache; nothing on Redis (its scripts are atomic)."""
    return contextlib.nullcontext() if redis_client(_backend()) is not None else _local_write_lock


def _cache_usable() -> bool:
    return not _backoff.resting()


def _cache_failed(exc: BaseException) -> None:
    _backoff.failed()
    logger.warning("revocation cache unavailable, using the database", extra={"error": type(exc).__name__})


def _revocation_write_failed(exc: BaseException) -> None:
    with _lock:
        _state["pending_generation_bump"] = True
    _cache_failed(exc)


def _bump_generation_if_pending() -> str | None:
    """The new generation when this process owed the cache one, else None."""
    if not _state["pending_generation_bump"]:
        return None
    generation = uuid.uuid4().hex
    try:
        with _writes_exclusive():
            cache.set(GEN_KEY, generation, timeout=None)
    except CACHE_ERRORS as exc:
        _cache_failed(exc)
        return None
    with _lock:
        _state["pending_generation_bump"] = False
    logger.info("revocation cache generation changed after an outage")
    return generation


def reset_process_state() -> None:
    """Forget a past outage (tests, and after a settings change)."""
    _backoff.reset()
    with _lock:
        _state["pending_generation_bump"] = False


@dataclass(frozen=True)
class SessionState:
    user_id: str
    revoked: bool
    expires_at: float  # epoch seconds
    last_used_at: float  # epoch seconds


def _ts(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


def state_from_row(row: dict) -> SessionState:
    """From a values() row with user_id, revoked_at, created_at, expires_at, last_used_at."""
    from sessions_mgmt.models import effective_expiry

    return SessionState(
        user_id=str(row["user_id"]),
        revoked=row["revoked_at"] is not None,
        expires_at=_ts(effective_expiry(created_at=row["created_at"], expires_at=row["expires_at"])),
        last_used_at=_ts(row["last_used_at"]),
    )


def _state_ttl(state: SessionState) -> int:
    if state.revoked:
        return revoked_ttl()
    left = int(state.expires_at - time.time())
    return max(1, min(settings.REVOCATION_CACHE_SECONDS, left))


def revoked_ttl() -> int:
    """At least as long as any access token issued before the revocation can live."""
    return settings.ACCESS_TOKEN_LIFETIME + int(settings.SIMPLE_JWT.get("LEEWAY", 0)) + 60


@dataclass
class Lookup:
    """What the cache knew; ``None`` fields are misses the caller fills from the database."""

    cache_ok: bool
    generation: str = ""
    session: SessionState | None = None
    # An entry for the session was there but unusable (an older generation): a fill replaces it.
    session_stale: bool = False
    user: object | None = None
    global_version: int | None = None
    # Keys holding an entry of an older generation or the CHANGED marker: a fill replaces them.
    stale_keys: frozenset = frozenset()
    # The rate-limit decisions when the request was counted in the same round trip, else None.
    decisions: list | None = None
    # What each key read held, as stored (None: absent): ``fill`` writes a key only while it
    # still holds exactly this, and only while the generation key does too.
    seen: dict = field(default_factory=dict)


def _local_stamp(value) -> bytes | None:
    """What a local-memory entry holds, comparable across reads (its pickle, as the cache keeps it)."""
    return None if value is None else pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def _read(keys: list[str], count) -> tuple[dict | None, list | None, dict]:
    """The cache's values of ``keys`` (None: the cache failed), the rate-limit decisions when
    ``count`` was given and could share the round trip, and each key's stored form."""
    if count:
        counted = consume_many_and_read(count, keys)
        if counted is not None:
            if counted.error is not None:
                _cache_failed(counted.error)
            return counted.values, counted.decisions, counted.raw or {}
    backend = _backend()
    client = redis_client(backend)
    try:
        if client is not None:
            raw = client.mget([backend.make_key(key) for key in keys])
            values = {key: backend.client.decode(value) for key, value in zip(keys, raw, strict=True)
                      if value is not None}
            return values, None, dict(zip(keys, raw, strict=True))
        values = cache.get_many(keys)
        return values, None, {key: _local_stamp(values.get(key)) for key in keys}
    except CACHE_ERRORS as exc:
        _cache_failed(exc)
        return None, None, {}


def lookup(*, session_id: str, user_id: str, count: list[tuple[str, str]] | None = None) -> Lookup:
    """One cache round trip for the session state, the user row and the global version.

    ``count``: the request's rate-limit ``(key, rate)`` pairs, counted in that same
    round trip when the limiter shares this Redis (see ``Lookup.decisions``).
    """
    if not _cache_usable():
        return Lookup(cache_ok=False)
    skey, ukey = session_key(session_id), user_key(user_id)
    values, decisions, seen = _read([GEN_KEY, skey, ukey, GLOBAL_VERSION_KEY], count)
    if values is None:
        return Lookup(cache_ok=False, decisions=decisions)
    if _state["pending_generation_bump"]:
        bumped = _bump_generation_if_pending()
        if bumped is None:
            # The cache answered the read but refused the new generation (a read-only
            # replica, out of memory): what it holds may predate a revocation. Database.
            return Lookup(cache_ok=False, decisions=decisions)
        # Everything just read was written before the generation change: all misses, each
        # replaceable by a fill while it still holds what was read.
        seen = {**seen, GEN_KEY: _stored_form(bumped)}
        return Lookup(cache_ok=True, generation=bumped, decisions=decisions, seen=seen)
    gen = values.get(GEN_KEY) or ""
    result = Lookup(cache_ok=True, generation=gen, decisions=decisions, seen=seen)
    stale = set()
    for key, attr in ((skey, "session"), (ukey, "user"), (GLOBAL_VERSION_KEY, "global_version")):
        entry = values.get(key)
        if isinstance(entry, tuple) and len(entry) == 2 and entry[0] == gen:
            setattr(result, attr, entry[1])
        elif entry is not None:
            stale.add(key)
    result.session_stale = skey in stale
    result.stale_keys = frozenset(stale)
    return result


def _without_password(user):
    """A copy of the user row for the cache, its password hash left out.

    The field is deferred, not blanked: reading it loads it from the database,
    and ``save()`` on a deferred instance writes only the fields it loaded.
    """
    cached = copy.copy(user)
    cached.__dict__.pop("password", None)
    cached._state = copy.copy(user._state)  # noqa: SLF001 - Django's per-instance state
    return cached


def _stored_form(value):
    """``value`` as the cache stores it (what ``Lookup.seen`` holds)."""
    backend = _backend()
    if redis_client(backend) is not None:
        return backend.client.encode(value)
    return _local_stamp(value)


# KEYS[1]: the generation key, then the keys to write. ARGV[1]: "1" when the lookup found a
# generation (ARGV[2] its stored form), "0" when none. Then per key: mode ("set": always,
# "new": only when absent, "cas": only while it holds exactly the expected value), the
# expected value, the new value, the TTL in ms. Returns how many keys were written, or -1
# when the generation changed since the lookup (nothing is written then).
LUA_FILL = """
local gen = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if gen then return -1 end
elseif gen ~= ARGV[2] then
  return -1
end
local written = 0
for i = 2, #KEYS do
  local a = 3 + (i - 2) * 4
  local mode = ARGV[a]
  local ok
  if mode == 'set' then
    ok = true
  elseif mode == 'new' then
    ok = redis.call('EXISTS', KEYS[i]) == 0
  else
    ok = redis.call('GET', KEYS[i]) == ARGV[a + 1]
  end
  if ok then
    redis.call('SET', KEYS[i], ARGV[a + 2], 'PX', ARGV[a + 3])
    written = written + 1
  end
end
return written
"""
FILL = lua_script("sessions.revocation_fill", LUA_FILL)


def fill(*, lookup: Lookup, session_id: str, user_id: str, session: SessionState | None = None,
         user=None, global_version: int | None = None) -> None:
    """Write what the database said back to the cache (best effort), as a compare-and-set.

    Each key is written only while it still holds what ``lookup`` read there
    (absent, an older generation's entry, a CHANGED marker, or the entry being
    corrected), and only while the generation is still the one ``lookup`` read.
    A request that read the session or the user just before a revocation or a
    change committed therefore never overwrites the "revoked" entry or the
    CHANGED marker that change left meanwhile (that would let old access tokens
    work for another REVOCATION_CACHE_SECONDS). A "revoked" session state is
    written unconditionally: a revocation is final.
    """
    generation = lookup.generation
    if user is not None:
        user = _without_password(user)
    writes: list[tuple[str, str, object, int]] = []  # key, mode, value, ttl seconds
    if session is not None:
        key = session_key(session_id)
        mode = "set" if session.revoked else ("new" if lookup.seen.get(key) is None else "cas")
        writes.append((key, mode, (generation, session), _state_ttl(session)))
    for key, value in ((user_key(user_id), user), (GLOBAL_VERSION_KEY, global_version)):
        if value is not None:
            mode = "new" if lookup.seen.get(key) is None else "cas"
            writes.append((key, mode, (generation, value), settings.REVOCATION_CACHE_SECONDS))
    if not writes:
        return
    try:
        backend = _backend()
        client = redis_client(backend)
        if client is not None:
            _fill_redis(backend, client, lookup, writes)
        else:
            _fill_local(lookup, writes)
    except CACHE_ERRORS as exc:
        _cache_failed(exc)


def _fill_redis(backend, client, lookup: Lookup, writes) -> None:
    gen_seen = lookup.seen.get(GEN_KEY)
    keys = [backend.make_key(GEN_KEY)]
    argv: list = ["0" if gen_seen is None else "1", b"" if gen_seen is None else gen_seen]
    for key, mode, value, ttl in writes:
        keys.append(backend.make_key(key))
        expected = lookup.seen.get(key)
        argv.extend([mode, b"" if expected is None else expected, backend.client.encode(value), int(ttl * 1000)])
    FILL(client, keys=keys, args=argv)


def _fill_local(lookup: Lookup, writes) -> None:
    with _local_write_lock:
        if _local_stamp(cache.get(GEN_KEY)) != lookup.seen.get(GEN_KEY):
            return
        for key, mode, value, ttl in writes:
            current = _local_stamp(cache.get(key))
            if mode == "set" or (mode == "new" and current is None) or (
                    mode == "cas" and current is not None and current == lookup.seen.get(key)):
                cache.set(key, value, timeout=ttl)


def _forget(keys: list[str]) -> None:
    """Delete entries now, so the next request asks the database."""
    if not keys:
        return
    try:
        with _writes_exclusive():
            cache.delete_many(keys)
    except CACHE_ERRORS as exc:
        _revocation_write_failed(exc)


def session_revoked(*, session_id, user_id) -> None:
    """Tell the cache a session is revoked: forget it now, and pin "revoked" once committed."""
    _forget([session_key(session_id)])
    state = SessionState(user_id=str(user_id), revoked=True, expires_at=0.0, last_used_at=0.0)

    def pin():
        try:
            with _writes_exclusive():
                gen = cache.get(GEN_KEY) or ""
                cache.set(session_key(session_id), (gen, state), timeout=revoked_ttl())
        except CACHE_ERRORS as exc:
            _revocation_write_failed(exc)

    transaction.on_commit(pin)


def session_changed(*, session_id) -> None:
    """Forget a cached session state (saved outside the revocation services)."""
    keys = [session_key(session_id)]
    _forget(keys)
    transaction.on_commit(lambda: _forget(keys))


def _mark_changed(keys: list[str], *, at_once: bool = True) -> None:
    """Forget entries now (unless not ``at_once``), and mark them CHANGED once the change is committed."""

    def mark():
        try:
            with _writes_exclusive():
                cache.set_many(dict.fromkeys(keys, changed_marker()), timeout=settings.REVOCATION_CACHE_SECONDS)
        except CACHE_ERRORS as exc:
            _revocation_write_failed(exc)

    if at_once:
        _forget(keys)
    transaction.on_commit(mark)


def user_changed(*, user_id, at_once: bool = True) -> None:
    """A user row changed (saved, deactivated, minimum token version raised): re-read it.

    ``at_once=False`` skips forgetting the entry before the change commits (one cache
    round trip less) for changes no access check depends on, such as ``last_login``.
    """
    _mark_changed([user_key(user_id)], at_once=at_once)


def global_version_changed() -> None:
    _mark_changed([GLOBAL_VERSION_KEY])


def session_touched(*, session_id) -> None:
    """After a ``last_used_at`` write: forget the cached state, so the next request re-reads it.

    Forgetting (rather than writing the new time over the entry) can never replace a
    "revoked" entry pinned by a revocation that committed meanwhile.
    """
    _forget([session_key(session_id)])


def now_ts() -> float:
    return timezone.now().timestamp()
