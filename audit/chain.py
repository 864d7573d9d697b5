"""Tamper evidence: the row hash taken at insert, and the hash chain taken at sealing.

Row hash: every event gets ``row_hash`` when it is inserted, an HMAC-SHA256 (keyed
with AUDIT_HMAC_KEY, which defaults to SECRET_KEY: a secret the database never
holds, so the database alone cannot forge it) of a canonical JSON of its content.
``audit_verify`` re-checks it on every event, sealed or not: someone who edits a
sealed event and recomputes the (unkeyed) chain after it is still found.

Chain: the sealing task gives each event a ``seq`` (1, 2, 3, ... with no gaps),
the ``prev_hash`` of the event before it, and ``chain_hash = SHA-256(prev_hash +
"\\n" + payload)``, where the payload is a canonical JSON of every field that
describes the event. Changing any of those fields, or deleting an event from the
middle, breaks the chain at that point.

The actor's foreign key is hashed by neither: it is set to NULL when a user is
deleted, while the email snapshot, which is hashed, stays.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.ipv6 import clean_ipv6_address

HASHED_FIELDS = (
    "id", "seq", "created_at", "action", "outcome", "actor_email",
    "target_type", "target_id", "target_repr", "request_id", "session_id",
    "ip", "user_agent", "fingerprint", "method", "path", "route", "extra",
    "client_request_id",
)
# Known before the INSERT (no id, no seq yet).
ROW_FIELDS = tuple(name for name in HASHED_FIELDS if name not in ("id", "seq"))
ROW_HASH_SALT = "dashtam.audit.row"


def _canonical(value):
    """What the database gives back: PostgreSQL's jsonb prints big whole floats as integers."""
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e15:
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _ip(value) -> str:
    value = str(value or "")
    # What GenericIPAddressField stores (and PostgreSQL's inet prints) for IPv6.
    return clean_ipv6_address(value) if ":" in value else value


def payload(row: dict, fields: tuple[str, ...] = HASHED_FIELDS) -> str:
    """Canonical JSON of one event (a dict with at least ``fields``)."""
    # Rows from before client_request_id (and rows without one) hash exactly as they always did.
    data = {name: row[name] for name in fields if name != "client_request_id"}
    if "client_request_id" in fields and row.get("client_request_id") is not None:
        data["client_request_id"] = row["client_request_id"]
    data["created_at"] = row["created_at"].astimezone(UTC).isoformat(timespec="microseconds")
    data["ip"] = _ip(row["ip"])
    data["extra"] = _canonical(row["extra"])
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def link_hash(prev_hash: str, row: dict) -> str:
    return hashlib.sha256(f"{prev_hash}\n{payload(row)}".encode()).hexdigest()


def hmac_keys() -> list[str]:
    """The row-hash keys, newest first: AUDIT_HMAC_KEY (else SECRET_KEY), then
    AUDIT_HMAC_KEY_FALLBACKS, then SECRET_KEY_FALLBACKS (rows hashed before a rotation)."""
    current = getattr(settings, "AUDIT_HMAC_KEY", "") or settings.SECRET_KEY
    keys = [current, *getattr(settings, "AUDIT_HMAC_KEY_FALLBACKS", []),
            *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return list(dict.fromkeys(k for k in keys if k))


def row_digest(row: dict, *, secret: str | None = None) -> str:
    return salted_hmac(ROW_HASH_SALT, payload(row, ROW_FIELDS), secret=secret or hmac_keys()[0],
                       algorithm="sha256").hexdigest()


def row_digest_matches(row: dict, digest: str) -> bool:
    """True when ``digest`` is the row's hash under one of ``hmac_keys()``."""
    if not digest:
        return False
    text = payload(row, ROW_FIELDS)
    for secret in hmac_keys():
        if constant_time_compare(salted_hmac(ROW_HASH_SALT, text, secret=secret, algorithm="sha256").hexdigest(),
                                 digest):
            return True
    return False
