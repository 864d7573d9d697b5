"""The refresh queue: which due connections already wait in it, and the beat's fan-out
that claims and enqueues the others.

A connection waiting in the queue for its refresh is "claimed" in the cache, so a
backlog longer than one beat interval is not enqueued again on every tick. A claim
lasts PROVIDER_REFRESH_AHEAD seconds at most and is released when its refresh ends.
Claims fail open: a duplicate task is safe (the refresh takes a row lock and re-checks
that it is due), a lost one is not.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache

from dashtam.redis import CACHE_ERRORS, default_client, lua_script
from providers import selectors

QUEUED_KEY = "providers:refresh-queued:{}"
# Connections claimed (and published) per script call.
CLAIM_CHUNK = 1000

# SET NX EX on each key; returns the 1-based positions of the keys it set.
_CLAIM_SCRIPT = """
local won = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, '1', 'NX', 'EX', ARGV[1]) then won[#won + 1] = i end
end
return won
"""
CLAIM = lua_script("providers.refresh_claim", _CLAIM_SCRIPT)


def claim(connection_id: str) -> bool:
    """True when the connection was not already queued. Fails open."""
    return bool(claim_many([connection_id]))


def claim_many(connection_ids: list[str]) -> list[str]:
    """The connections among ``connection_ids`` that were not already queued, now claimed.

    On Redis one script call per thousand connections (a ``SET NX EX`` each, run by
    Redis: a pipeline of ten thousand commands cost the fan-out most of a second of
    CPU); on other caches ``cache.add`` each. Fails open, like ``claim``.
    """
    timeout = settings.PROVIDER_REFRESH_AHEAD
    try:
        client = default_client()
        if client is None:
            return [cid for cid in connection_ids if cache.add(QUEUED_KEY.format(cid), 1, timeout=timeout)]
        claimed = []
        for i in range(0, len(connection_ids), CLAIM_CHUNK):
            chunk = connection_ids[i:i + CLAIM_CHUNK]
            won = CLAIM(client, keys=[cache.make_key(QUEUED_KEY.format(cid)) for cid in chunk], args=[timeout])
            claimed += [chunk[int(n) - 1] for n in won]
        return claimed
    except CACHE_ERRORS:
        return list(connection_ids)


def release(*connection_ids: str) -> None:
    """Forget the claims of these connections (their refreshes ended). Never raises for the cache."""
    if not connection_ids:
        return
    try:
        cache.delete_many([QUEUED_KEY.format(cid) for cid in connection_ids])
    except CACHE_ERRORS:
        pass


def due_enqueue(*, publish, size: int) -> tuple[int, int]:
    """Claim the due connections (the PROVIDER_REFRESH_BATCH most urgent, see
    ``selectors.tokens_due_for_refresh``) that are not queued yet, and hand them to
    ``publish`` (the refresh task's ``delay``) ``size`` connections per call.

    Claimed and published a thousand at a time, so the first refreshes start at once.
    Returns (connections enqueued, tasks published).
    """
    due = selectors.tokens_due_for_refresh(limit=settings.PROVIDER_REFRESH_BATCH)
    enqueued = tasks = 0
    for i in range(0, len(due), CLAIM_CHUNK):
        ids = claim_many(due[i:i + CLAIM_CHUNK])
        for j in range(0, len(ids), size):
            publish(ids[j:j + size])
            tasks += 1
        enqueued += len(ids)
    return enqueued, tasks
