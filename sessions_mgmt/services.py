"""Login sessions: start, refresh (rotation with reuse detection), revoke, clean up.

Every write here is atomic and idempotent; revocations reach the revocation
cache (``sessions_mgmt.revocation``) so access tokens stop working on the very
next request, while the database stays the source of truth.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from audit.services import record
from dashtam import context
from dashtam.db.statements import Statement, Table
from dashtam.errors import DomainError
from dashtam.mail import send_templated_email
from sessions_mgmt import revocation, tokens
from sessions_mgmt.devices import describe
from sessions_mgmt.models import (
    EXPIRED,
    INACTIVE,
    REVOKED,
    SecurityConfig,
    Session,
    born_after,
    global_min_version,
    global_min_version_expression,
    global_min_version_sql,
    refusal,
    token_live_sql,
    version_floor,
)

logger = logging.getLogger("dashtam.sessions")

BEARER = {"WWW-Authenticate": 'Bearer realm="api"'}


@dataclass(frozen=True)
class IssuedTokens:
    """A freshly signed access + refresh pair, the access token's lifetime in seconds
    (``expires_in``) and the session the pair belongs to."""

    access: str
    refresh: str
    expires_in: int
    session: Session


# --- start ----------------------------------------------------------------------------
def _client(request) -> tuple[str | None, str]:
    ctx = context.get()
    if ctx is not None:
        return ctx.ip, ctx.user_agent
    meta = getattr(request, "META", {}) or {}
    return context.client_ip(meta), (meta.get("HTTP_USER_AGENT", "") or "")[:512]


@transaction.atomic(savepoint=False)  # inside a login's transaction: no savepoint round trips
def session_start(*, user, request, auth_methods: list[str] | None = None) -> IssuedTokens:
    """Create a login session for an authenticated user and its first token pair.

    ``user`` must be the row the login just read (its ``min_token_version`` sets the
    new tokens' version; a stale, lower one would only make them refused at once).

    Not idempotent (each call is a new login). Sends the new-device alert when
    the user has signed in before but never from this device, browser and
    location. Audits ``session.created``; the session id is bound to the request
    context so the caller's login audit row carries it too. ``auth_methods`` (the
    factors the login proved) are stored on the session and carried as the tokens' ``amr``.
    """
    now = timezone.now()
    ip, user_agent = _client(request)
    info = describe(user_agent=user_agent, ip=ip)
    # One query: the global minimum version and whether this user has signed in before,
    # from this device or at all. The user's own minimum comes from the row this login
    # read a moment ago.
    global_min, known_device, signed_in_before = _login_facts(user_id=user.pk, info=info)
    version = version_floor(user_min=user.min_token_version, global_min=global_min)
    first_login = not signed_in_before

    session = Session(
        user=user, created_at=now, last_used_at=now,
        expires_at=now + timedelta(seconds=settings.SESSION_MAX_AGE),
        ip=ip, user_agent=user_agent, device=info.device, browser=info.browser, os=info.os,
        location=info.location, auth_methods=list(auth_methods or ["password"]),
    )
    pair = tokens.issue_pair(user_id=user.pk, session_id=session.id, version=version,
                             session_expires_at=session.expires_at, now=now, amr=session.auth_methods)
    session.refresh_jti = pair.refresh_jti
    session.save(force_insert=True)
    context.bind_actor(user, session.id)
    record(action="session.created", target=session, actor=user,
           extra={"device": info.device, "browser": info.browser, "location": info.location})

    if not known_device and not first_login:
        record(action="session.new_device", target=session, actor=user,
               extra={"device": info.device, "browser": info.browser, "location": info.location})
        send_templated_email(to=user.email, template="session_new_device", context=_email_context(session))
    return IssuedTokens(access=pair.access, refresh=pair.refresh, expires_in=pair.expires_in, session=session)


def _login_facts_sql(db) -> str:
    session = Table(Session, db)
    # Identifiers from the models' metadata, quoted; every value is a bound parameter.
    return (
        f"SELECT {global_min_version_sql(Table(SecurityConfig, db, 'c'))}, "  # noqa: S608  # nosec B608
        f"EXISTS (SELECT 1 FROM {session.ref} WHERE {session.user} = %s AND {session.device} = %s "
        f"AND {session.browser} = %s AND {session.location} = %s), "
        f"EXISTS (SELECT 1 FROM {session.ref} WHERE {session.user} = %s)"
    )


# A read, in SQL every database here speaks: usable everywhere (it saves nothing).
LOGIN_FACTS = Statement("sessions.login_facts", _login_facts_sql, vendors=None)


def _login_facts(*, user_id, info) -> tuple[int, bool, bool]:
    """(global minimum version, signed in before from this device, signed in before at all).

    One statement written out once: the ORM took longer to build these three small reads
    (about 0.7 ms of CPU per login) than the database took to answer them. What it stands
    for in the ORM: ``global_min_version()`` and two ``Session.objects.filter(...).exists()``
    (tests compare both).
    """
    uid = Session._meta.get_field("user").target_field.get_db_prep_value(user_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(LOGIN_FACTS.get(connection.alias), [uid, info.device, info.browser, info.location, uid])
        global_min, known_device, signed_in_before = cursor.fetchone()
    return global_min or 0, bool(known_device), bool(signed_in_before)


def _email_context(session: Session) -> dict:
    return {
        "first_name": getattr(session.user, "first_name", "") if session.user_id else "",
        "device": session.device,
        "browser": session.browser,
        "os": session.os,
        "location": session.location,
        "ip_address": session.ip or "",
        "when": timezone.now().strftime("%Y-%m-%d %H:%M UTC"),
        "sessions_url": f"{settings.FRONTEND_URL}/settings/sessions",
        "reset_url": f"{settings.FRONTEND_URL}/forgot-password",
    }


# --- refresh ----------------------------------------------------------------------------
def session_refresh(*, refresh: str) -> IssuedTokens:
    """Exchange the newest refresh token of a session for a new pair (always rotates).

    Audits ``session.refreshed``. Locks the session row, so of two concurrent refreshes with one token exactly
    one succeeds; the rotation itself is also a compare-and-swap on the jti.
    A token of the family that was already rotated, presented after
    REFRESH_REUSE_GRACE_SECONDS, is theft: the whole session is revoked and
    committed, ``session.token_reuse_detected`` is audited, the user is
    emailed, and the caller gets 401 TOKEN_REUSED.
    """
    try:
        payload = tokens.decode_refresh(refresh)
    except tokens.InvalidTokenError:
        raise DomainError("TOKEN_INVALID", "The refresh token is invalid or expired.", headers=BEARER) from None

    if ROTATE.usable(connection.alias):
        issued = _rotate_in_one_statement(payload)
        if issued is not None:
            return issued
    # Not rotated above: find out why under the row lock (or rotate here, off PostgreSQL).
    failure: DomainError | None = None
    issued: IssuedTokens | None = None
    with transaction.atomic():
        # One statement: the session (locked), its user, and the global minimum version.
        session = (
            Session.objects.select_for_update(of=("self",)).select_related("user")
            .annotate(global_min_version=global_min_version_expression())
            .filter(pk=payload["sid"]).first()
        )
        now = timezone.now()
        why = None if session is None else refusal(
            revoked=session.revoked_at is not None, expires_at=session.effective_expires_at, now=now,
            user_active=session.user.is_active, version=payload["ver"],
            user_min=session.user.min_token_version, global_min=session.global_min_version)
        if session is None or str(session.user_id) != str(payload["user_id"]):
            failure = DomainError("TOKEN_INVALID", "The refresh token is invalid or expired.", headers=BEARER)
        elif why == REVOKED:
            failure = DomainError("SESSION_REVOKED", "This session has ended. Sign in again.", headers=BEARER)
        elif why in (EXPIRED, INACTIVE):
            failure = DomainError("TOKEN_INVALID", "This session has expired. Sign in again.", headers=BEARER)
        elif why is not None:  # a stale token version
            failure = DomainError("SESSION_REVOKED", "This session has ended. Sign in again.", headers=BEARER)
        elif payload["jti"] != session.refresh_jti:
            grace = settings.REFRESH_REUSE_GRACE_SECONDS
            in_grace = (
                grace > 0 and payload["jti"] == session.previous_refresh_jti and session.rotated_at is not None
                and now - session.rotated_at <= timedelta(seconds=grace)
            )
            if in_grace:
                failure = DomainError(
                    "TOKEN_INVALID", "This refresh token was just rotated; use the newest one.", headers=BEARER
                )
            else:
                _token_reuse_detected(session=session, now=now)
                failure = DomainError(
                    "TOKEN_REUSED",
                    "This refresh token was already used. The session has been ended for your safety.",
                    headers=BEARER,
                )
        else:
            version = version_floor(user_min=session.user.min_token_version, global_min=session.global_min_version)
            issued = _rotate(session=session, old_jti=payload["jti"], version=version, now=now)
            if issued is None:
                failure = DomainError("TOKEN_INVALID", "The refresh token is invalid or expired.", headers=BEARER)
    if failure is not None:
        raise failure
    return issued


def _rotate(*, session: Session, old_jti: str, version: int, now) -> IssuedTokens | None:
    pair = tokens.issue_pair(user_id=session.user_id, session_id=session.id, version=version,
                             session_expires_at=session.effective_expires_at, now=now, amr=session.auth_methods)
    swapped = Session.objects.filter(pk=session.pk, refresh_jti=old_jti, revoked_at__isnull=True).update(
        refresh_jti=pair.refresh_jti, previous_refresh_jti=old_jti, rotated_at=now, last_used_at=now,
    )
    if swapped != 1:
        return None
    session.refresh_jti, session.previous_refresh_jti = pair.refresh_jti, old_jti
    session.rotated_at = session.last_used_at = now
    context.bind_actor(session.user, session.id)
    record(action="session.refreshed", target=session, actor=session.user)
    return IssuedTokens(access=pair.access, refresh=pair.refresh, expires_in=pair.expires_in, session=session)


def _rotate_sql(db) -> str:
    """The one statement of a normal rotation: the whole liveness rule (``token_live_sql``)
    and the compare-and-swap of the jti in its WHERE clause, the session's times and the
    user's email back in RETURNING."""
    s = Table(Session, db, "s")
    u = Table(get_user_model(), db, "u")
    rule = token_live_sql(session=s, user=u, config=Table(SecurityConfig, db, "c"),
                          version="%(ver)s", now="%(now)s", born_after="%(born_after)s")
    # Identifiers from the models' metadata, quoted; every value is a bound parameter.
    return (
        f"UPDATE {s.ref} SET {s.column('refresh_jti')} = %(new_jti)s, "  # noqa: S608  # nosec B608
        f"{s.column('previous_refresh_jti')} = %(old_jti)s, {s.column('rotated_at')} = %(now)s, "
        f"{s.column('last_used_at')} = %(now)s "
        f"FROM {u.ref} "
        f"WHERE {s.pk} = %(sid)s AND {s.user} = %(uid)s AND {u.pk} = {s.user} "
        f"AND {s.refresh_jti} = %(old_jti)s AND {rule} "
        f"RETURNING {s.created_at}, {s.expires_at}, {s.browser}, {s.os}, {u.email}"
    )


# PostgreSQL (UPDATE ... FROM ... RETURNING). It writes the session with an UPDATE, as the
# locked path's ORM ``update()`` does: neither sends save signals, so this statement bypasses
# none (the revocation cache's ``post_save`` listener on Session hears neither path).
ROTATE = Statement("sessions.rotate", _rotate_sql)


def _rotate_in_one_statement(payload: dict) -> IssuedTokens | None:
    """The common case in one UPDATE ... RETURNING plus the audit INSERT, or None.

    None means the presented token is not, right now, the live refresh token of a
    live session of an active user with a current version; the locked path then
    says why (revoked, expired, reuse...). A concurrent refresh with the same token
    waits on the row and then finds the jti swapped: exactly one of them rotates.
    The new tokens keep the presented token's version, which the statement checked
    against the user's and the global minimum.
    """
    now = timezone.now()
    new_jti = tokens.new_jti()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(ROTATE.get(connection.alias), {
                "new_jti": new_jti, "old_jti": payload["jti"], "now": now,
                "sid": payload["sid"], "uid": payload["user_id"], "ver": payload["ver"],
                "born_after": born_after(now),
            })
            row = cursor.fetchone()
        if row is None:
            return None
        created_at, expires_at, browser, os_name, email = row
        user = get_user_model()(pk=payload["user_id"], email=email)
        session = Session(
            id=payload["sid"], user_id=user.pk, created_at=created_at, expires_at=expires_at, last_used_at=now,
            browser=browser, os=os_name, refresh_jti=new_jti, previous_refresh_jti=payload["jti"], rotated_at=now,
        )
        pair = tokens.issue_pair(user_id=user.pk, session_id=session.id, version=payload["ver"],
                                 session_expires_at=session.effective_expires_at, refresh_jti=new_jti, now=now,
                                 amr=payload.get("amr"))
        context.bind_actor(user, session.id)
        record(action="session.refreshed", target=session, actor=user)
    return IssuedTokens(access=pair.access, refresh=pair.refresh, expires_in=pair.expires_in, session=session)


def _token_reuse_detected(*, session: Session, now) -> None:
    _revoke_locked(session=session, reason="token_reuse", now=now)
    context.bind_actor(session.user, session.id)
    record(action="session.token_reuse_detected", outcome="denied", target=session, actor=session.user,
           extra={"reason": "token_reuse"})
    send_templated_email(to=session.user.email, template="session_token_reuse", context=_email_context(session))
    logger.warning("refresh token reuse detected; session revoked", extra={"session_id": str(session.id)})


# --- revoke -----------------------------------------------------------------------------
def _revoke_locked(*, session: Session, reason: str, now) -> None:
    session.revoked_at = now
    session.revoke_reason = reason[:64]
    session.save(update_fields=["revoked_at", "revoke_reason"])
    revocation.session_revoked(session_id=session.pk, user_id=session.user_id)


@transaction.atomic
def session_revoke(*, session: Session, reason: str, actor=None) -> bool:
    """End one login session now: its refresh tokens and its access tokens stop working.

    Locks the session row. Returns False when it was already revoked, so callers
    may retry safely. Audits ``session.revoked``.
    """
    locked = Session.objects.select_for_update().filter(pk=session.pk).first()
    if locked is None or locked.revoked_at is not None:
        return False
    now = timezone.now()
    _revoke_locked(session=locked, reason=reason, now=now)
    session.revoked_at, session.revoke_reason = locked.revoked_at, locked.revoke_reason
    record(action="session.revoked", target=locked, actor=actor, extra={"reason": reason})
    return True


@transaction.atomic
def sessions_revoke_all(*, user, reason: str, keep_session_id=None, actor=None) -> int:
    """End every active session of ``user`` except ``keep_session_id``; return how many ended.

    Locks the sessions it ends; idempotent (a second call returns 0 and audits
    nothing). Audits one ``sessions.revoked`` row with the count.
    """
    now = timezone.now()
    qs = Session.objects.active(now=now).filter(user_id=user.pk)
    if keep_session_id:
        qs = qs.exclude(pk=keep_session_id)
    ids = list(qs.select_for_update().values_list("pk", flat=True))
    if not ids:
        return 0
    Session.objects.filter(pk__in=ids).update(revoked_at=now, revoke_reason=reason[:64])
    for pk in ids:
        revocation.session_revoked(session_id=pk, user_id=user.pk)
    record(action="sessions.revoked", target=user, actor=actor,
           extra={"reason": reason, "count": len(ids), "kept_session_id": str(keep_session_id or "")})
    return len(ids)


@transaction.atomic
def session_logout(*, session_id, refresh: str, user) -> bool:
    """Log out: end the session the caller is authenticated with.

    The refresh token must belong to that same session (its signature is
    checked; an already-rotated one of the family is accepted, since the
    caller proved possession of the session's access token too).
    Idempotent; audits ``auth.logout``.
    """
    try:
        payload = tokens.decode_refresh(refresh)
    except tokens.InvalidTokenError:
        raise DomainError("TOKEN_INVALID", "The refresh token is invalid or expired.", headers=BEARER) from None
    if payload["sid"] != str(session_id) or str(payload["user_id"]) != str(user.pk):
        raise DomainError("TOKEN_INVALID", "The refresh token does not belong to this session.", headers=BEARER)
    session = Session.objects.select_for_update().filter(pk=session_id, user_id=user.pk).first()
    if session is None or session.revoked_at is not None:
        return False
    _revoke_locked(session=session, reason="logout", now=timezone.now())
    record(action="auth.logout", target=session, actor=user)
    return True


# --- breach rotation ---------------------------------------------------------------------
@transaction.atomic
def tokens_revoke_for_user(*, user, reason: str, actor=None) -> int:
    """Raise the user's minimum token version: every token issued before stops working.

    Also ends the user's sessions. Locks the user row. Returns the new minimum.
    Audits ``session.tokens_revoked`` (scope "user").
    """
    user_model = get_user_model()
    locked = user_model.objects.select_for_update().get(pk=user.pk)
    new_min = max(locked.min_token_version, global_min_version()) + 1
    user_model.objects.filter(pk=user.pk).update(min_token_version=new_min)
    user.min_token_version = new_min
    revocation.user_changed(user_id=user.pk)
    sessions_revoke_all(user=user, reason=reason, actor=actor)
    record(action="session.tokens_revoked", target=user, actor=actor,
           extra={"scope": "user", "reason": reason, "min_version": new_min})
    return new_min


@transaction.atomic
def tokens_revoke_all(*, reason: str, actor=None) -> int:
    """Raise the global minimum token version: every token of every user stops working.

    Locks the SecurityConfig row and marks every active session revoked in one
    statement. Returns the new global minimum. Audits ``session.tokens_revoked`` (scope "all").
    """
    SecurityConfig.objects.get_or_create(pk=1)
    config = SecurityConfig.objects.select_for_update().get(pk=1)
    user_model = get_user_model()
    highest_user = user_model.objects.order_by("-min_token_version").values_list(
        "min_token_version", flat=True).first() or 0
    config.min_token_version = max(config.min_token_version, highest_user) + 1
    config.save(update_fields=["min_token_version", "updated_at"])
    revocation.global_version_changed()
    now = timezone.now()
    ended = Session.objects.active(now=now).update(revoked_at=now, revoke_reason=reason[:64])
    record(action="session.tokens_revoked", target=config, actor=actor,
           extra={"scope": "all", "reason": reason, "min_version": config.min_token_version,
                  "sessions": ended})
    return config.min_token_version


# --- access-path bookkeeping -------------------------------------------------------------
def session_touch(*, session_id, now=None) -> bool:
    """Record activity at most once per SESSION_LAST_USED_RESOLUTION seconds per session.

    A conditional UPDATE, so concurrent requests and several processes write at
    most once per window. Returns True when it wrote.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SESSION_LAST_USED_RESOLUTION)
    return bool(
        Session.objects.filter(pk=session_id, revoked_at__isnull=True, last_used_at__lt=cutoff)
        .update(last_used_at=now)
    )


# --- clean-up ------------------------------------------------------------------------------
def sessions_cleanup(*, batch_size: int = 1000, max_batches: int = 1000) -> dict[str, int]:
    """Delete, in batches, sessions that expired or were revoked more than
    SESSION_RETENTION_DAYS ago, their refresh tokens' outstanding/blacklisted rows,
    and every outstanding token row that has expired.

    The session row's ``refresh_jti`` is the only record of which refresh token is
    alive; simplejwt's outstanding/blacklist tables are no longer written (they were
    two more INSERTs per rotation that nothing read). Rows written by earlier
    releases are still cleaned up here until the tables are empty.

    Each batch is its own short transaction, so it never holds long locks and a
    second run at the same time only finds less to do. Idempotent.
    """
    now = timezone.now()
    cutoff = now - timedelta(days=settings.SESSION_RETENTION_DAYS)
    old = Session.objects.filter(Q(revoked_at__lt=cutoff) | Q(expires_at__lt=cutoff))
    deleted_sessions = deleted_tokens = 0
    for _ in range(max_batches):
        with transaction.atomic():
            batch = list(old.values_list("pk", "refresh_jti", "previous_refresh_jti")[:batch_size])
            if not batch:
                break
            jtis = [j for _, a, b in batch for j in (a, b) if j]
            deleted_tokens += OutstandingToken.objects.filter(jti__in=jtis).delete()[0]
            deleted_sessions += Session.objects.filter(pk__in=[pk for pk, _, _ in batch]).delete()[0]
    expired = OutstandingToken.objects.filter(expires_at__lt=now)
    for _ in range(max_batches):
        with transaction.atomic():
            ids = list(expired.values_list("pk", flat=True)[:batch_size])
            if not ids:
                break
            deleted_tokens += OutstandingToken.objects.filter(pk__in=ids).delete()[0]
    return {"sessions": deleted_sessions, "tokens": deleted_tokens}
