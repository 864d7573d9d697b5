"""The hash chain: how one sealed event's hash is computed.

Each sealed event has a ``seq`` (1, 2, 3, ... with no gaps), the ``prev_hash`` of
the event before it, and ``chain_hash = SHA-256(prev_hash + "\\n" + payload)``,
where the payload is a canonical JSON of every field that describes the event.
Changing any of those fields, or deleting an event from the middle, breaks the
chain at that point. The actor's foreign key is left out on purpose: it is set
to NULL when a user is deleted, while the email snapshot, which is hashed, stays.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

HASHED_FIELDS = (
    "id", "seq", "created_at", "action", "outcome", "actor_email",
    "target_type", "target_id", "target_repr", "request_id", "session_id",
    "ip", "user_agent", "fingerprint", "method", "path", "route", "extra",
)


def payload(row: dict) -> str:
    """Canonical JSON of one event (a dict with at least HASHED_FIELDS)."""
    data = {name: row[name] for name in HASHED_FIELDS}
    data["created_at"] = row["created_at"].astimezone(UTC).isoformat(timespec="microseconds")
    data["ip"] = row["ip"] or ""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def link_hash(prev_hash: str, row: dict) -> str:
    return hashlib.sha256(f"{prev_hash}\n{payload(row)}".encode()).hexdigest()
