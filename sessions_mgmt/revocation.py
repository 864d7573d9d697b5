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
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from dashtam.ratelimit.core import consume_many_and_read

logger = logging.getLogger("dashtam.sessions")

CACHE_ERRORS = (ConnectionInterrupted, RedisError)

GEN_KEY = "sessions:gen"
GLOBAL_VERSION_KEY = "sessions:gver"
# Written over a user or global-version entry once a change of it commits. It reads as a
# miss, and the authentication class only *adds* those entries except over this marker
# (or an older generation's entry): a request that read the row just before the change
# committed cannot put the old row back, while one that read it afterwards can refill it.
CHANGED = "changed"


def session_key(session_id) -> str:
    return f"sessions:s:{session_id}"


def user_key(user_id) -> str:
    return f"sessions:u:{user_id}"


# Process-local: after a cache error, skip the cache for a few seconds instead of
# paying a timeout on every request; remember to bump the generation afterwards.
_lock = threading.Lock()
_state = {"down_until": 0.0, "pending_generation_bump": False}


def _cache_usable() -> bool:
    return time.monotonic() >= _state["down_until"]


def _cache_failed(exc: BaseException) -> None:
    with _lock:
        _state["down_until"] = time.monotonic() + settings.REVOCATION_CACHE_RETRY_SECONDS
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
    with _lock:
        _state["down_until"] = 0.0
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


def _read(keys: list[str], count) -> tuple[dict | None, list | None]:
    """The cache's values of ``keys`` (None: the cache failed) and, when ``count`` was
    given and could share the round trip, the rate-limit decisions."""
    if count:
        counted = consume_many_and_read(count, keys)
        if counted is not None:
            if counted.error is not None:
                _cache_failed(counted.error)
            return counted.values, counted.decisions
    try:
        return cache.get_many(keys), None
    except CACHE_ERRORS as exc:
        _cache_failed(exc)
        return None, None


def lookup(*, session_id: str, user_id: str, count: list[tuple[str, str]] | None = None) -> Lookup:
    """One cache round trip for the session state, the user row and the global version.

    ``count``: the request's rate-limit ``(key, rate)`` pairs, counted in that same
    round trip when the limiter shares this Redis (see ``Lookup.decisions``).
    """
    if not _cache_usable():
        return Lookup(cache_ok=False)
    skey, ukey = session_key(session_id), user_key(user_id)
    values, decisions = _read([GEN_KEY, skey, ukey, GLOBAL_VERSION_KEY], count)
    if values is None:
        return Lookup(cache_ok=False, decisions=decisions)
    if _state["pending_generation_bump"]:
        bumped = _bump_generation_if_pending()
        if bumped is None:
            # The cache answered the read but refused the new generation (a read-only
            # replica, out of memory): what it holds may predate a revocation. Database.
            return Lookup(cache_ok=False, decisions=decisions)
        # Everything just read was written before the generation change: all misses.
        return Lookup(cache_ok=True, generation=bumped, decisions=decisions)
    gen = values.get(GEN_KEY) or ""
    result = Lookup(cache_ok=True, generation=gen, decisions=decisions)
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


def fill(*, generation: str, session_id: str, user_id: str, session: SessionState | None = None,
         user=None, global_version: int | None = None, replace_session: bool = False,
         add_only: bool = False, replace_keys=frozenset()) -> None:
    """Write what the database said back to the cache (best effort).

    A live session state is only *added*: a request that read the session just
    before a revocation committed must not overwrite the "revoked" entry the
    revocation pinned meanwhile (that would let the session's access tokens work
    for another REVOCATION_CACHE_SECONDS). ``replace_session`` overwrites an
    entry the lookup found unusable (an older generation).

    With ``add_only`` (the authentication class) the user row and the global version
    are only added as well, except over the ``replace_keys`` the lookup found stale
    (an older generation, or the CHANGED marker a committed change left).
    """
    data: dict[str, tuple] = {}
    ttl_by_key: dict[str, int] = {}
    if user is not None:
        user = _without_password(user)
    if session is not None:
        key = session_key(session_id)
        if session.revoked or replace_session:
            data[key] = (generation, session)
            ttl_by_key[key] = _state_ttl(session)
        else:
            try:
                cache.add(key, (generation, session), timeout=_state_ttl(session))
            except CACHE_ERRORS as exc:
                _cache_failed(exc)
                return
    for key, value in ((user_key(user_id), user), (GLOBAL_VERSION_KEY, global_version)):
        if value is None:
            continue
        if add_only and key not in replace_keys:
            try:
                cache.add(key, (generation, value), timeout=settings.REVOCATION_CACHE_SECONDS)
            except CACHE_ERRORS as exc:
                _cache_failed(exc)
                return
            continue
        data[key] = (generation, value)
        ttl_by_key[key] = settings.REVOCATION_CACHE_SECONDS
    if not data:
        return
    try:
        if len({*ttl_by_key.values()}) == 1:
            cache.set_many(data, timeout=next(iter(ttl_by_key.values())))
        else:
            for key, value in data.items():
                cache.set(key, value, timeout=ttl_by_key[key])
    except CACHE_ERRORS as exc:
        _cache_failed(exc)


def _forget(keys: list[str]) -> None:
    """Delete entries now, so the next request asks the database."""
    if not keys:
        return
    try:
        cache.delete_many(keys)
    except CACHE_ERRORS as exc:
        _revocation_write_failed(exc)


def session_revoked(*, session_id, user_id) -> None:
    """Tell the cache a session is revoked: forget it now, and pin "revoked" once committed."""
    _forget([session_key(session_id)])
    state = SessionState(user_id=str(user_id), revoked=True, expires_at=0.0, last_used_at=0.0)

    def pin():
        try:
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
            cache.set_many(dict.fromkeys(keys, CHANGED), timeout=settings.REVOCATION_CACHE_SECONDS)
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
