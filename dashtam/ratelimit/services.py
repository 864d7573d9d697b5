"""Writes that staff trigger: unblocking a rate-limited key."""

from __future__ import annotations

from django.db import transaction

from audit.services import record
from dashtam.ratelimit.registry import limited_key_clear


@transaction.atomic
def limited_key_unblock(*, key: str, rate: str, actor) -> bool:
    """Forget ``key``'s count in its current window, so its next request is admitted.

    Idempotent: returns False (and audits nothing) when the key was not counted,
    or when the cache is unreachable. Audits one ``admin.action`` event naming
    the key, the rate and the staff member. Locks nothing.
    """
    if not limited_key_clear(key=key, rate=rate):
        return False
    record(action="admin.action", outcome="success", actor=actor,
           target_type="ratelimit.key", target_id=key[:64], target_repr=f"{key} {rate}"[:255],
           extra={"action": "ratelimit.unblock", "key": key, "rate": rate, "count": 1})
    return True
