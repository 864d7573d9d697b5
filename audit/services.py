"""The one way into the audit trail, and the trail's own upkeep (seal, verify, purge)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, connections, router, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from audit import chain
from audit.catalogue import validate
from audit.models import AuditEvent, Outcome
from dashtam import context
from dashtam.db.statements import Statement, Table
from dashtam.logging import scrub
from dashtam.observability import metrics

logger = logging.getLogger("dashtam.audit")

# One lock for the chain's writers (sealing and purging), so they never interleave.
CHAIN_LOCK_KEY = 0x6175646974  # "audit"
_HASHED = list(chain.HASHED_FIELDS)


def record(*, action: str, outcome: str = "success", target=None, extra: dict | None = None,
           actor=None, target_type: str = "", target_id: str = "", target_repr: str = "") -> AuditEvent:
    """Write one audit event inside the caller's transaction.

    The request context (request id, IP, user agent, route, session) is filled in
    from the contextvar. ``actor`` defaults to the authenticated user of the
    request; pass it explicitly when the request is not authenticated yet (login).
    Secrets in ``extra`` are scrubbed by key. An action code missing from
    ``audit/catalogue.py`` or an unknown outcome raises ValueError.

    A plain INSERT: no lock, no read of other rows (the hash chain is sealed
    later by ``audit_chain_seal``), so concurrent requests never wait on each other here.
    """
    validate(action)
    if outcome not in Outcome.values:
        raise ValueError(f"Unknown audit outcome {outcome!r}")
    ctx = context.get()
    if target is not None:
        target_type = target_type or f"{target._meta.app_label}.{target._meta.model_name}"
        target_id = target_id or str(target.pk)
        target_repr = target_repr or str(target)[:255]
    actor_id = None
    actor_email = ""
    if actor is not None:
        actor_id, actor_email = actor.pk, actor.email
    elif ctx is not None and ctx.user_id:
        actor_id, actor_email = ctx.user_id, ctx.user_email
        if ctx.origin != "request" and not _user_exists(actor_id):
            # A task enqueued by a user who has been deleted since: keep the email snapshot.
            actor_id = None
    metrics.audit_event(action, outcome)
    return _insert(AuditEvent(
        action=action,
        outcome=outcome,
        actor_id=actor_id,
        actor_email=actor_email,
        target_type=target_type[:64],
        target_id=str(target_id)[:64],
        target_repr=target_repr[:255],
        request_id=(ctx.request_id if ctx else "") or "",
        client_request_id=(ctx.client_request_id if ctx else None) or None,
        session_id=(ctx.session_id if ctx else "") or "",
        ip=ctx.ip if ctx else None,
        user_agent=(ctx.user_agent if ctx else "")[:512],
        fingerprint=ctx.fingerprint if ctx else "",
        method=ctx.method if ctx else "",
        path=(ctx.path if ctx else "")[:512],
        route=(ctx.route if ctx else "")[:255],
        extra=scrub(extra or {}),
    ))


_batch: ContextVar[list | None] = ContextVar("dashtam_audit_batch", default=None)


@contextmanager
def batched():
    """Within the block, ``record()`` hashes each event at once and INSERTs them all in one
    statement when the block ends without an error (inside the caller's transaction, which
    must enclose the block). A login writes two events this way in one round trip. Their
    ``pk`` is set when the block ends. Nested blocks join the outermost."""
    if _batch.get() is not None:
        yield
        return
    events: list[AuditEvent] = []
    token = _batch.set(events)
    try:
        yield
    except BaseException:
        _batch.reset(token)
        raise
    _batch.reset(token)
    if events:
        _insert_many(events)


def _insert(event: AuditEvent) -> AuditEvent:
    pending = _batch.get()
    if pending is not None:
        event.take_row_hash()
        pending.append(event)
        return event
    return _insert_many([event])[0]


_INSERT_FIELDS = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]


def _insert_sql(db, rows: int) -> str:
    """INSERT ``rows`` events in one statement, returning their ids in VALUES order."""
    table = Table(AuditEvent, db)
    returning, _ = db.ops.return_insert_columns([AuditEvent._meta.pk])
    row = f"({', '.join(['%s'] * len(_INSERT_FIELDS))})"
    # Identifiers from the model's metadata, quoted; every value is a bound parameter.
    return (
        f"INSERT INTO {table.ref} "  # noqa: S608  # nosec B608
        f"({', '.join(table.column(f.name) for f in _INSERT_FIELDS)}) VALUES {', '.join([row] * rows)} "
        f"{returning}"
    )


# Portable SQL: any database that returns the new ids from a multi-row INSERT (PostgreSQL,
# SQLite). It writes audit events without save(): not while anyone listens for their saves.
INSERT = Statement("audit.insert", _insert_sql, vendors=None, features=["can_return_rows_from_bulk_insert"],
                   writes_without_save=[AuditEvent])


def _insert_many(events: list[AuditEvent]) -> list[AuditEvent]:
    """INSERT new events with a statement built once per database and row count.

    Every login, refresh and sign-up writes one or two events, and compiling this
    20-column INSERT through the ORM each time was a fifth of what an event cost.
    The values go through each field's own ``pre_save`` and ``get_db_prep_save``,
    as the ORM prepares them, and the row hash is taken as ``AuditEvent.save``
    takes it (tests compare both ways). Where the statement is not usable
    (``INSERT.usable``), the ORM's ``save()``.
    """
    alias = router.db_for_write(AuditEvent)
    if not INSERT.usable(alias):
        # The ORM's save(), which sends the signals someone listens to.
        for event in events:
            event._state.adding = True
            event.save(using=alias)
        return events
    db = connections[alias]
    for event in events:
        if not event.row_hash:
            event.take_row_hash()
    params = [f.get_db_prep_save(f.pre_save(event, True), connection=db) for event in events for f in _INSERT_FIELDS]
    with db.cursor() as cursor:
        cursor.execute(INSERT.get(alias, len(events)), params)
        ids = [row[0] for row in cursor.fetchall()]
    for event, pk in zip(events, ids, strict=True):  # RETURNING gives the rows in VALUES order
        event.pk = pk
        event._state.adding = False
        event._state.db = alias
    return events


def _user_exists(user_id) -> bool:
    from django.contrib.auth import get_user_model
    from django.core.exceptions import ValidationError

    try:
        return get_user_model()._base_manager.filter(pk=user_id).exists()
    except (ValueError, ValidationError):
        return False


# --- The hash chain -----------------------------------------------------------------------
def _chain_lock(*, wait: bool) -> bool:
    """Take the chain writers' lock for this transaction (PostgreSQL; SQLite serialises writes)."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def _latest_purge_anchor() -> tuple[int, str] | None:
    """(through_seq, through_hash) of the most recent purge, which removed the chain's start."""
    row = (AuditEvent.objects.filter(action="audit.purged", extra__has_key="through_seq")
           .order_by("-id").values_list("extra", flat=True).first())
    if not row:
        return None
    return int(row["through_seq"]), str(row["through_hash"])


def _chain_head() -> tuple[int, str]:
    """(seq, chain_hash) of the last sealed event, or of the purge anchor, or (0, "")."""
    head = (AuditEvent.objects.filter(seq__isnull=False).order_by("-seq")
            .values_list("seq", "chain_hash").first())
    anchor = _latest_purge_anchor()
    candidates = [c for c in (head, anchor) if c is not None]
    if not candidates:
        return 0, ""
    return max(candidates, key=lambda c: c[0])


def audit_chain_head() -> tuple[int, str]:
    """(seq, chain_hash) of the newest sealed event: worth keeping outside the database,
    since removing the newest sealed events is what the chain alone cannot show."""
    return _chain_head()


PUBLISHED_ACTION = "audit.head_published"


def audit_chain_head_publish() -> tuple[int, str]:
    """Publish the chain's head (seq, chain_hash): a log line for storage the database
    cannot reach, and an ``audit.head_published`` event staff see in the admin.

    ``audit_verify --against SEQ:HASH`` later proves that nothing up to a published
    head changed. The event is written only when events other than earlier
    publications were sealed since the last one, so an idle trail does not grow by
    its own publications; the log line is written every time. Returns the head.
    """
    seq, head = _chain_head()
    logger.warning("audit chain head", extra={"head_seq": seq, "head_hash": head})
    if not seq:
        return seq, head
    last = (AuditEvent.objects.filter(action=PUBLISHED_ACTION).order_by("-id")
            .values_list("extra", flat=True).first())
    last_seq = int((last or {}).get("head_seq") or 0)
    if AuditEvent.objects.filter(seq__gt=last_seq, seq__lte=seq).exclude(action=PUBLISHED_ACTION).exists():
        with transaction.atomic():
            record(action=PUBLISHED_ACTION, extra={"head_seq": seq, "head_hash": head})
    return seq, head


def _seal_batch(batch_size: int) -> int | None:
    with transaction.atomic():
        if not _chain_lock(wait=False):
            return None  # another sealer (or the purge) holds the chain right now
        seq, prev = _chain_head()
        pending = list(AuditEvent.objects.filter(seq__isnull=True).order_by("id")[:batch_size])
        for event in pending:
            if not chain.row_digest_matches({name: getattr(event, name) for name in chain.ROW_FIELDS},
                                            event.row_hash):
                # Changed between its INSERT and now: seal it as it is (the chain must go on),
                # and write down, for good, that it was not what was written.
                logger.error("audit event changed before sealing", extra={"event_id": event.pk})
                record(action="audit.tamper_detected", outcome="failure", extra={
                    "event_id": event.pk, "reason": "row hash mismatch before sealing",
                })
            seq += 1
            event.seq = seq
            event.prev_hash = prev
            row = {name: getattr(event, name) for name in _HASHED}
            event.chain_hash = prev = chain.link_hash(event.prev_hash, row)
        if pending:
            _seal_rows(pending)
        return len(pending)


def _seal_sql(db) -> str:
    table = Table(AuditEvent, db)
    # Identifiers from the model's metadata, quoted; the values are parameters.
    return (f"UPDATE {table.ref} SET {table.column('seq')} = %s, {table.column('prev_hash')} = %s, "  # noqa: S608  # nosec B608
            f"{table.column('chain_hash')} = %s WHERE {table.pk} = %s")


# Portable SQL. Its ORM path is update(), which sends no save signal either: it bypasses none.
SEAL = Statement("audit.seal", _seal_sql, vendors=None)


def _seal_rows(events: list[AuditEvent]) -> None:
    """Write the seal fields of ``events``: one plain UPDATE per row, sent together (psycopg
    pipelines executemany), far cheaper to build and to run than bulk_update's CASE over the
    whole batch."""
    if not SEAL.usable(connection.alias):
        for e in events:
            AuditEvent.objects.filter(pk=e.pk).update(seq=e.seq, prev_hash=e.prev_hash, chain_hash=e.chain_hash)
        return
    with connection.cursor() as cursor:
        cursor.executemany(SEAL.get(connection.alias), [(e.seq, e.prev_hash, e.chain_hash, e.pk) for e in events])


def audit_chain_seal(*, batch_size: int | None = None, max_batches: int = 1000) -> int:
    """Link every unsealed event into the hash chain, oldest id first; return how many.

    Each batch is one short transaction under the chain lock (a PostgreSQL
    advisory lock, tried without waiting): a second sealer running at the same
    time finds the lock taken and returns 0, so overlapping runs are safe.
    Idempotent: a sealed event is never sealed again (and the PostgreSQL
    trigger refuses to change a sealed row). Audits nothing but a tamper finding.

    The values hashed are read back from the database, so they are exactly what
    ``audit_chain_verify`` will read later. Each event's row hash (taken at
    insert) is checked first; an event changed since is still sealed, and an
    ``audit.tamper_detected`` event naming it is recorded, which makes
    ``audit_chain_verify`` fail from then on.
    """
    size = batch_size or settings.AUDIT_SEAL_BATCH_SIZE
    total = 0
    for _ in range(max_batches):
        sealed = _seal_batch(size)
        if sealed is None:
            break
        total += sealed
        if sealed < size:
            break
    return total


@dataclass(frozen=True)
class ChainReport:
    """The result of ``audit_chain_verify``: whether the trail is intact, how many events were
    checked (and how many of them were not sealed yet), and for a broken trail the first
    broken event, its seq and why. ``str()`` is the line ``audit_verify`` prints."""

    ok: bool
    checked: int
    unsealed: int
    broken_event_id: int | None = None
    broken_seq: int | None = None
    reason: str = ""
    note: str = ""  # what was proven against a published head

    def __str__(self) -> str:
        if self.ok:
            tail = (f" ({self.unsealed} of them not sealed yet, checked against their row hash)"
                    if self.unsealed else "")
            note = f" {self.note}" if self.note else ""
            return f"OK: {self.checked} event(s) checked{tail}.{note}"
        where = f"event id {self.broken_event_id}"
        if self.broken_seq is not None:
            where += f" (seq {self.broken_seq})"
        return f"BROKEN at {where}: {self.reason}. {self.checked} sealed event(s) were checked before it."


def audit_chain_verify(*, chunk_size: int = 2000, against: list[tuple[int, str]] | None = None) -> ChainReport:
    """Walk the trail and report the first broken link; writes nothing.

    1. The sealed events, in chain order: a link is broken when an event's
       contents no longer hash to its chain hash (edited), when its prev_hash is
       not the previous event's hash, when seq numbers are missing (deleted), or
       when its contents no longer match its row hash (an HMAC keyed with a secret
       the database does not hold: an edit followed by a recomputed chain).
       The first event may start after seq 1 only if a retention purge recorded,
       in its ``audit.purged`` event, the seq and hash it purged through.
    1b. ``against``: published chain heads ``(seq, chain_hash)``. The event with
       that seq must still carry that hash (or the purge that removed it must
       name it): nothing up to a published head was changed, removed or relinked.
    2. ``audit.tamper_detected`` events: the sealer found an event changed
       between its insert and its sealing.
    3. The events not sealed yet: each must still match the row hash taken at insert.

    Reads in keyset pages over the seq and id indexes.
    """
    unsealed = AuditEvent.objects.filter(seq__isnull=True).count()
    checked = 0
    expected_seq: int | None = None
    expected_prev = ""
    last_seq = 0
    fields = ["seq", "prev_hash", "chain_hash", "row_hash", *[f for f in _HASHED if f != "seq"]]
    while True:
        rows = list(AuditEvent.objects.filter(seq__gt=last_seq).order_by("seq").values(*fields)[:chunk_size])
        if not rows:
            break
        for row in rows:
            if expected_seq is None:
                expected_seq = row["seq"]
                if row["seq"] != 1:
                    anchor = AuditEvent.objects.filter(
                        action="audit.purged", extra__through_seq=row["seq"] - 1,
                    ).values_list("extra", flat=True).first()
                    if anchor is None:
                        return ChainReport(False, checked, unsealed, row["id"], row["seq"],
                                           f"events before seq {row['seq']} are missing and no purge "
                                           "recorded removing them")
                    expected_prev = str(anchor.get("through_hash", ""))
            if row["seq"] != expected_seq:
                return ChainReport(False, checked, unsealed, row["id"], row["seq"],
                                   f"event(s) missing before it: expected seq {expected_seq}")
            if row["prev_hash"] != expected_prev:
                return ChainReport(False, checked, unsealed, row["id"], row["seq"],
                                   "its prev_hash does not match the previous event's hash")
            if chain.link_hash(row["prev_hash"], row) != row["chain_hash"]:
                return ChainReport(False, checked, unsealed, row["id"], row["seq"],
                                   "its contents were changed after it was sealed")
            if not chain.row_digest_matches(row, row["row_hash"]):
                reported = (AuditEvent.objects.filter(action="audit.tamper_detected", extra__event_id=row["id"])
                            .order_by("id").values_list("id", flat=True).first())
                reason = (f"its contents were changed before it was sealed (reported by event {reported})"
                          if reported else "its contents do not match its row hash (changed, and the chain "
                          "recomputed, after it was written)")
                return ChainReport(False, checked, unsealed, row["id"], row["seq"], reason)
            checked += 1
            expected_prev = row["chain_hash"]
            expected_seq = row["seq"] + 1
            last_seq = row["seq"]

    notes = []
    for head_seq, head_hash in against or ():
        problem, note = _check_published_head(head_seq, head_hash)
        if problem is not None:
            event_id = AuditEvent.objects.filter(seq=head_seq).values_list("id", flat=True).first()
            return ChainReport(False, checked, unsealed, event_id, head_seq, problem)
        notes.append(note)

    found = (AuditEvent.objects.filter(action="audit.tamper_detected", extra__has_key="event_id").order_by("id")
             .values_list("id", "extra").first())
    if found is not None:
        event_id = found[1].get("event_id")
        seq = AuditEvent.objects.filter(pk=event_id).values_list("seq", flat=True).first()
        return ChainReport(False, checked, unsealed, event_id, seq,
                           f"its contents were changed before it was sealed (reported by event {found[0]})")

    last_id = 0
    row_fields = ["id", "row_hash", *chain.ROW_FIELDS]
    while True:
        rows = list(AuditEvent.objects.filter(seq__isnull=True, id__gt=last_id).order_by("id")
                    .values(*row_fields)[:chunk_size])
        if not rows:
            break
        for row in rows:
            if not chain.row_digest_matches(row, row["row_hash"]):
                return ChainReport(False, checked, unsealed, row["id"], None,
                                   "its contents were changed since it was written (not sealed yet)")
            checked += 1
            last_id = row["id"]
    return ChainReport(True, checked, unsealed, note=" ".join(notes))


def _check_published_head(seq: int, head_hash: str) -> tuple[str | None, str]:
    """(problem, None) when the trail no longer contains the published head ``seq:head_hash``,
    else (None, what was proven). Called after the chain walk found every link intact, so a
    matching head proves every event up to it unchanged."""
    found = AuditEvent.objects.filter(seq=seq).values_list("chain_hash", flat=True).first()
    if found is not None:
        if not constant_time_compare(found, head_hash):
            return (f"the published head seq {seq} had hash {head_hash[:16]}..., the trail now has "
                    f"{found[:16]}...: events up to it were changed, removed or relinked"), ""
        return None, f"Published head seq {seq} matches: nothing before it changed."
    anchor = (AuditEvent.objects.filter(action="audit.purged", extra__through_seq__gte=seq)
              .order_by("id").values_list("extra", flat=True).first())
    if anchor is not None:
        if int(anchor["through_seq"]) == seq and not constant_time_compare(str(anchor["through_hash"]), head_hash):
            return (f"the published head seq {seq} had hash {head_hash[:16]}..., the purge that removed "
                    "it recorded another: events up to it were changed before the purge"), ""
        return None, f"Published head seq {seq} was removed by the retention purge."
    return (f"the published head seq {seq} is not in the trail: the newest sealed events were "
            "removed"), ""


# --- Retention --------------------------------------------------------------------------
def audit_events_purge(*, now=None, batch_size: int | None = None, max_batches: int = 10_000) -> int:
    """Delete events older than AUDIT_RETENTION_DAYS, oldest first, in batches; return how many.

    Pending events are sealed first, so the purge only ever removes a prefix of
    the chain. Each batch is one transaction under the chain lock (waiting for
    it) that sets ``dashtam.audit_purge`` for itself only (``SET LOCAL``, the one
    exception the PostgreSQL trigger allows), deletes the batch, and records an
    ``audit.purged`` event with the count and the seq and hash it purged through,
    which ``audit_chain_verify`` uses as the new start of the chain. Idempotent:
    a second run finds nothing old enough and records nothing.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    size = batch_size or settings.AUDIT_PURGE_BATCH_SIZE
    audit_chain_seal()
    total = 0
    for _ in range(max_batches):
        with transaction.atomic():
            _chain_lock(wait=True)
            rows = list(AuditEvent.objects.filter(seq__isnull=False).order_by("seq")
                        .values_list("seq", "created_at", "chain_hash")[:size])
            old = []
            for row in rows:
                if row[1] >= cutoff:
                    break
                old.append(row)
            if not old:
                break
            through_seq, _, through_hash = old[-1]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL dashtam.audit_purge = 'on'")
            deleted = AuditEvent.objects.filter(seq__lte=through_seq)._purge_delete()
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL dashtam.audit_purge = 'off'")
            record(action="audit.purged", extra={
                "count": deleted, "through_seq": through_seq, "through_hash": through_hash,
                "cutoff": cutoff.isoformat(), "retention_days": settings.AUDIT_RETENTION_DAYS,
            })
            total += deleted
        if len(old) < size:
            break
    return total


# --- Admin actions ------------------------------------------------------------------------
def record_admin_action(request, *, action: str, target=None, **extra) -> AuditEvent:
    """What a staff member did from the admin: one ``admin.action`` event, the staff member
    as actor, ``extra`` = {"action": action, **extra} (``count`` of rows done, ...).

    Call it inside the transaction of the change it describes. Each admin action keeps its
    own ``allowed_permissions``; this only writes the trail.
    """
    return record(action="admin.action", actor=request.user, target=target, extra={"action": action, **extra})
