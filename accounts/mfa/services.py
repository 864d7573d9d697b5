"""Second factors: enrolment, the login step, recovery codes, staff reset, key rotation.

Every change writes its audit row in the same transaction and emails the owner
(enqueued on commit). A failed check (wrong code, wrong password) is audited
outside the rolled-back transaction, so the trail keeps it.

The login step is generic: ``login_next_step`` runs after any first factor
(password today; a magic link later) and either completes the login or returns
an ``MfaRequired`` answer listing the methods the account can finish with.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts import lockout
from accounts.mfa import totp
from accounts.mfa.models import MfaChallenge, RecoveryCode, TotpDevice
from accounts.models import User
from accounts.passkeys.models import Passkey
from accounts.services import (
    LoginResult,
    _current_password_check,
    _login_failed,
    _mail_context,
    login_complete,
)
from audit.services import record
from dashtam import context, crypto
from dashtam.db.statements import Statement, Table
from dashtam.errors import DomainError, RetryLater
from dashtam.mail import send_templated_email

logger = logging.getLogger("dashtam.accounts.mfa")

TOTP = "totp"
RECOVERY_CODE = "recovery_code"
PASSKEY = "passkey"
INVALID_CODE_DETAIL = "The code is wrong, expired or was already used."
DEAD_TOKEN_DETAIL = "This sign-in step has expired or was already used. Sign in again."


@dataclass(frozen=True)
class MfaRequired:
    """A first factor was right; the login needs one of ``methods`` to finish."""

    user: User
    mfa_token: str
    methods: list[str]
    expires_in: int


class _WrongCode(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --- seeds at rest ----------------------------------------------------------------------
def _aad(device: TotpDevice) -> str:
    return f"accounts.TotpDevice:{device.pk}:{device.user_id}:secret"


def _seal(device: TotpDevice, secret: str) -> None:
    device.secret_encrypted = crypto.encrypt(secret, aad=_aad(device))
    device.key_id = crypto.key_id_of(device.secret_encrypted)


def _open(device: TotpDevice) -> str:
    return crypto.decrypt(device.secret_encrypted, aad=_aad(device))


# --- reads ---------------------------------------------------------------------------------
def _factors_sql(db) -> str:
    device, passkey = Table(TotpDevice, db), Table(Passkey, db)
    # Identifiers from the models' metadata, quoted; every value is a bound parameter.
    return (
        f"SELECT EXISTS (SELECT 1 FROM {device.ref} WHERE {device.user} = %s "  # noqa: S608  # nosec B608
        f"AND {device.confirmed_at} IS NOT NULL), "
        f"EXISTS (SELECT 1 FROM {passkey.ref} WHERE {passkey.user} = %s)"
    )


# A read in SQL every database here speaks, usable everywhere: every password login asks it.
FACTORS = Statement("accounts.mfa_factors", _factors_sql, vendors=None)


def mfa_methods_for(*, user: User) -> list[str]:
    """The second factors that can finish a login for ``user`` ([] when none).

    One statement, written out once, with two indexed EXISTS: a confirmed TOTP device
    (then recovery codes work too) and a passkey (accounts/passkeys). What it stands for
    in the ORM: ``TotpDevice.objects.filter(user_id=..., confirmed_at__isnull=False).exists()``
    and ``Passkey.objects.filter(user_id=...).exists()`` (tests compare both).
    """
    if FACTORS.usable():
        uid = TotpDevice._meta.get_field("user").target_field.get_db_prep_value(user.pk, connection)
        with connection.cursor() as cursor:
            cursor.execute(FACTORS.get(connection.alias), [uid, uid])
            has_totp, has_passkey = cursor.fetchone()
    else:
        has_totp = TotpDevice.objects.filter(user_id=user.pk, confirmed_at__isnull=False).exists()
        has_passkey = Passkey.objects.filter(user_id=user.pk).exists()
    methods = []
    if has_totp:
        methods += [TOTP, RECOVERY_CODE]
    if has_passkey:
        methods.append(PASSKEY)
    return methods


def mfa_status(*, user: User) -> dict:
    """GET auth/mfa: whether TOTP is on, how many recovery codes are left (never a seed or a code)."""
    device = TotpDevice.objects.filter(user_id=user.pk, confirmed_at__isnull=False).first()
    remaining = RecoveryCode.objects.filter(user_id=user.pk, used_at__isnull=True).count() if device else 0
    return {
        "totp": {"enabled": device is not None, "created_at": device.confirmed_at if device else None},
        "recovery_codes": {"remaining": remaining},
        "passkeys": Passkey.objects.filter(user_id=user.pk).count(),
    }


# --- client binding of the mfa_token -----------------------------------------------------------
def _client(request) -> tuple[str | None, str]:
    ctx = context.get()
    if ctx is not None:
        return ctx.ip, ctx.user_agent or ""
    meta = getattr(request, "META", {}) or {}
    return context.client_ip(meta), (meta.get("HTTP_USER_AGENT", "") or "")[:512]


def _network(ip: str | None) -> str:
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = settings.MFA_TOKEN_IPV4_PREFIX if address.version == 4 else settings.MFA_TOKEN_IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _ua_hash(user_agent: str) -> str:
    return totp.token_hash("ua:" + (user_agent or ""))


# --- the login step ------------------------------------------------------------------------
def login_next_step(*, request, user: User, method: str) -> LoginResult | MfaRequired:
    """After a first factor (``method``, e.g. "password"): tokens, or the second-factor step.

    The one place every path to tokens goes through. An account without a confirmed
    factor logs in at once; one with a factor gets an ``MfaRequired`` and no
    session, and its lockout counter is not reset (only a completed sign-in does).
    """
    methods = mfa_methods_for(user=user)
    if not methods:
        return login_complete(request=request, user=user, auth_methods=[method])
    return mfa_challenge_start(request=request, user=user, methods_done=[method], methods=methods)


@transaction.atomic
def mfa_challenge_start(*, request, user: User, methods_done: list[str], methods: list[str]) -> MfaRequired:
    """Issue an mfa_token for ``user``: opaque, stored hashed, bound to the client.

    Audits ``auth.mfa.challenge``. Not idempotent: each call is a new token.
    """
    token = secrets.token_urlsafe(32)
    ip, user_agent = _client(request)
    now = timezone.now()
    MfaChallenge.objects.create(
        user=user, token_hash=totp.token_hash(token), methods_done=list(methods_done),
        ip_network=_network(ip), user_agent_hash=_ua_hash(user_agent), created_at=now,
        expires_at=now + timedelta(seconds=settings.MFA_TOKEN_SECONDS),
    )
    record(action="auth.mfa.challenge", target=user, actor=user,
           extra={"methods_done": list(methods_done), "methods": list(methods)})
    return MfaRequired(user=user, mfa_token=token, methods=list(methods), expires_in=settings.MFA_TOKEN_SECONDS)


def _live_challenge(*, request, mfa_token: str) -> MfaChallenge:
    now = timezone.now()
    if not isinstance(mfa_token, str) or not mfa_token or len(mfa_token) > 256 or not mfa_token.isascii():
        raise DomainError("TOKEN_INVALID", DEAD_TOKEN_DETAIL)
    challenge = (MfaChallenge.objects.select_related("user")
                 .filter(token_hash=totp.token_hash(mfa_token), used_at__isnull=True, expires_at__gt=now,
                         failures__lt=settings.MFA_TOKEN_MAX_FAILURES).first())
    if challenge is None or not challenge.user.is_active:
        raise DomainError("TOKEN_INVALID", DEAD_TOKEN_DETAIL)
    ip, user_agent = _client(request)
    same_client = (hmac.compare_digest(challenge.ip_network, _network(ip))
                   and hmac.compare_digest(challenge.user_agent_hash, _ua_hash(user_agent)))
    if not same_client:
        record(action="auth.mfa.failed", outcome="denied", target=challenge.user, actor=challenge.user,
               extra={"reason": "other_client"})
        raise DomainError("TOKEN_INVALID", DEAD_TOKEN_DETAIL)
    return challenge


def _raise_if_locked(*, request, user: User, step: str) -> None:
    state = lockout.lockout_state_for_request(request, {"email": user.email})
    # Tells the lockout handler whether a completed sign-in has attempts to delete (see LockoutHandler).
    request.dashtam_account_attempts = state.account_has_attempts
    # As at the password step: a client that signed in to this account before is held by the
    # account's lock only, not by its IP's (accounts/lockout.py, known_client).
    ip_locked = state.ip_locked and not lockout.known_client(request, username=lockout.axes_username(
        request, {"email": user.email}))
    if state.account_locked or ip_locked:
        record(action="auth.mfa.failed", outcome="denied", target=user, actor=user,
               extra={"reason": "locked", "step": step})
        raise RetryLater("ACCOUNT_LOCKED", lockout.LOCKED_DETAIL, retry_after=max(1, state.retry_after))


def _count_failure(*, request, user: User) -> None:
    """A wrong code counts toward the account's lockout exactly as a wrong password does."""
    if request is None:
        return
    user_login_failed.send(sender=__name__, credentials={"email": user.email}, request=request)
    if getattr(request, "axes_locked_out", False):
        _login_failed(request=request, email=user.email)  # audits the lock, emails the owner, raises 429


def login_mfa_verify(*, request, mfa_token: str, code: str) -> LoginResult:
    """POST auth/login/mfa: the mfa_token and a TOTP or recovery code -> the login.

    401 TOKEN_INVALID for an unknown, expired, spent or dead token (or another
    client's); 429 ACCOUNT_LOCKED while the account is locked; 401 INVALID_MFA_CODE
    for a wrong, malformed or replayed code, which counts toward the lockout and
    toward the token's MFA_TOKEN_MAX_FAILURES. On success the token is spent, the
    TOTP step (or the recovery code) is used up, and the session starts, all in one
    transaction: of two concurrent uses of one code exactly one succeeds.
    Audits ``auth.mfa.failed``, ``auth.mfa.recovery_code.used``, and the login's events.
    """
    challenge = _live_challenge(request=request, mfa_token=mfa_token)
    user = challenge.user
    _raise_if_locked(request=request, user=user, step="login")
    now = timezone.now()
    try:
        with transaction.atomic():
            spent = MfaChallenge.objects.filter(
                pk=challenge.pk, used_at__isnull=True, expires_at__gt=now,
                failures__lt=settings.MFA_TOKEN_MAX_FAILURES,
            ).update(used_at=now)
            if not spent:
                raise DomainError("TOKEN_INVALID", DEAD_TOKEN_DETAIL)
            method = _factor_use(user=user, code=code, now=now, allow_recovery=True)
            return login_complete(request=request, user=user, auth_methods=[*challenge.methods_done, method])
    except _WrongCode as wrong:
        MfaChallenge.objects.filter(pk=challenge.pk).update(failures=F("failures") + 1)
        record(action="auth.mfa.failed", outcome="failure", target=user, actor=user,
               extra={"reason": wrong.reason, "step": "login"})
        _count_failure(request=request, user=user)
        raise DomainError("INVALID_MFA_CODE", INVALID_CODE_DETAIL) from None


def _factor_use(*, user: User, code, now, allow_recovery: bool, device: TotpDevice | None = None) -> str:
    """Check ``code`` and use it up: a TOTP step (once per device) or a recovery code (once).

    Must run inside the caller's transaction. Raises _WrongCode when it is wrong,
    malformed, replayed, or (for a recovery code) already used.
    """
    if not isinstance(code, str):
        raise _WrongCode("malformed")
    compact = "".join(code.split())
    if totp.TOTP_CODE.fullmatch(compact):
        device = device or TotpDevice.objects.filter(user_id=user.pk, confirmed_at__isnull=False).first()
        if device is None:
            raise _WrongCode("no_device")
        try:
            secret = _open(device)
        except crypto.DecryptionError:
            # Its key left FIELD_ENCRYPTION_KEYS before rotate_encryption_keys re-sealed it:
            # an operator's problem, said in the log; recovery codes still work.
            logger.error("a TOTP seed could not be decrypted", extra={"device_id": str(device.pk)})
            raise _WrongCode("seed_unreadable") from None
        step = totp.matching_step(secret, compact)
        if step is None:
            raise _WrongCode("wrong_code")
        fresh = TotpDevice.objects.filter(pk=device.pk).filter(
            Q(last_used_step__isnull=True) | Q(last_used_step__lt=step)
        ).update(last_used_step=step, last_used_at=now)
        if not fresh:
            raise _WrongCode("replayed")
        return TOTP
    if not allow_recovery:
        raise _WrongCode("malformed")
    normalized = totp.normalize_recovery_code(code)
    if normalized is None:
        raise _WrongCode("malformed")
    digest = totp.recovery_code_hash(user_id=user.pk, normalized=normalized)
    match = None
    for pk, stored in RecoveryCode.objects.filter(user_id=user.pk, used_at__isnull=True).values_list("pk", "code_hash"):
        if hmac.compare_digest(stored, digest):
            match = pk
    if match is None:
        raise _WrongCode("wrong_code")
    # The row lock of this UPDATE makes a concurrent use of the same code wait, then find it used.
    if not RecoveryCode.objects.filter(pk=match, used_at__isnull=True).update(used_at=now):
        raise _WrongCode("replayed")
    remaining = RecoveryCode.objects.filter(user_id=user.pk, used_at__isnull=True).count()
    record(action="auth.mfa.recovery_code.used", target=user, actor=user, extra={"remaining": remaining})
    send_templated_email(to=user.email, template="account_mfa_recovery_code_used",
                         context=_mail_context(user, remaining=remaining))
    return RECOVERY_CODE


# --- enrolment and management ------------------------------------------------------------------
def _new_recovery_codes(*, user: User, now) -> list[str]:
    RecoveryCode.objects.filter(user_id=user.pk).delete()
    codes = [totp.new_recovery_code() for _ in range(settings.MFA_RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.bulk_create([
        RecoveryCode(user=user, created_at=now,
                     code_hash=totp.recovery_code_hash(user_id=user.pk, normalized=totp.normalize_recovery_code(c)))
        for c in codes
    ])
    return codes


def totp_enrol_start(*, user: User, password: str, request=None) -> dict:
    """POST auth/mfa/totp: a new pending device; returns its secret, otpauth URI and QR SVG.

    Needs the password (a wrong one counts toward the lockout). Replaces an earlier
    pending device; a confirmed one keeps working until the new one is confirmed.
    Audits ``auth.mfa.totp.enrolment_started`` (never the secret).
    """
    _current_password_check(user=user, password=password, field="password", request=request)
    secret = totp.new_secret()
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        TotpDevice.objects.filter(user_id=user.pk, confirmed_at__isnull=True).delete()
        device = TotpDevice(user=user)
        _seal(device, secret)
        device.save(force_insert=True)
        record(action="auth.mfa.totp.enrolment_started", target=user, actor=user)
    uri = totp.otpauth_uri(secret, account=user.email, issuer=settings.MFA_TOTP_ISSUER)
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": totp.qr_svg(uri)}


def totp_enrol_confirm(*, user: User, code: str, end_other_sessions: bool = False,
                       keep_session_id=None) -> list[str]:
    """POST auth/mfa/totp/confirm: prove the pending device with a code; it becomes the factor.

    409 CONFLICT without a pending device; 401 INVALID_MFA_CODE for a wrong code
    (nothing changes). Replaces an earlier confirmed device, issues
    MFA_RECOVERY_CODE_COUNT new recovery codes (returned once, stored hashed; the old
    ones die), optionally ends every other session in the same transaction, emails
    the owner. Row-locks the user. Audits ``auth.mfa.totp.enabled``.
    """
    from sessions_mgmt.services import sessions_revoke_all

    now = timezone.now()
    try:
        with transaction.atomic():
            User.objects.select_for_update().filter(pk=user.pk).first()
            pending = TotpDevice.objects.filter(user_id=user.pk, confirmed_at__isnull=True).first()
            if pending is None:
                raise DomainError("CONFLICT", "There is no pending authenticator to confirm. "
                                               "Start with POST auth/mfa/totp.")
            _factor_use(user=user, code=code, now=now, allow_recovery=False, device=pending)
            replaced = TotpDevice.objects.filter(user_id=user.pk, confirmed_at__isnull=False).delete()[0] > 0
            TotpDevice.objects.filter(pk=pending.pk).update(confirmed_at=now)
            codes = _new_recovery_codes(user=user, now=now)
            ended = 0
            if end_other_sessions:
                ended = sessions_revoke_all(user=user, reason="mfa_enabled", keep_session_id=keep_session_id,
                                            actor=user)
            send_templated_email(to=user.email, template="account_mfa_enabled",
                                 context=_mail_context(user, recovery_codes=len(codes)))
            record(action="auth.mfa.totp.enabled", target=user, actor=user,
                   extra={"replaced": replaced, "other_sessions_ended": ended})
            return codes
    except _WrongCode as wrong:
        record(action="auth.mfa.failed", outcome="failure", target=user, actor=user,
               extra={"reason": wrong.reason, "step": "confirm"})
        raise DomainError("INVALID_MFA_CODE", INVALID_CODE_DETAIL) from None


def totp_disable(*, user: User, password: str, code: str, end_other_sessions: bool = False,
                 keep_session_id=None, request=None) -> None:
    """DELETE auth/mfa/totp: needs the password and a current code (TOTP or recovery code).

    A wrong password answers as change-password does; a wrong code is 401
    INVALID_MFA_CODE, counts toward the lockout, and changes nothing. Removes the
    devices and recovery codes, optionally ends every other session in the same
    transaction, emails the owner. Audits ``auth.mfa.totp.disabled``.
    """
    from sessions_mgmt.services import sessions_revoke_all

    _current_password_check(user=user, password=password, field="password", request=request)
    if not TotpDevice.objects.filter(user_id=user.pk, confirmed_at__isnull=False).exists():
        raise DomainError("CONFLICT", "Two-step verification is not on.")
    if request is not None:
        _raise_if_locked(request=request, user=user, step="disable")
    now = timezone.now()
    try:
        with transaction.atomic():
            User.objects.select_for_update().filter(pk=user.pk).first()
            method = _factor_use(user=user, code=code, now=now, allow_recovery=True)
            _factors_delete(user=user)
            ended = 0
            if end_other_sessions:
                ended = sessions_revoke_all(user=user, reason="mfa_disabled", keep_session_id=keep_session_id,
                                            actor=user)
            send_templated_email(to=user.email, template="account_mfa_disabled",
                                 context=_mail_context(user, by_staff=False))
            record(action="auth.mfa.totp.disabled", target=user, actor=user,
                   extra={"method": method, "other_sessions_ended": ended})
    except _WrongCode as wrong:
        record(action="auth.mfa.failed", outcome="failure", target=user, actor=user,
               extra={"reason": wrong.reason, "step": "disable"})
        _count_failure(request=request, user=user)
        raise DomainError("INVALID_MFA_CODE", INVALID_CODE_DETAIL) from None


def _factors_delete(*, user: User) -> int:
    devices = TotpDevice.objects.filter(user_id=user.pk).delete()[0]
    RecoveryCode.objects.filter(user_id=user.pk).delete()
    MfaChallenge.objects.filter(user_id=user.pk, used_at__isnull=True).delete()
    return devices


def recovery_codes_regenerate(*, user: User, password: str, request=None) -> list[str]:
    """POST auth/mfa/recovery-codes: new codes for an account with TOTP on; the old ones die.

    Needs the password. 409 CONFLICT when TOTP is off. Emails the owner.
    Audits ``auth.mfa.recovery_codes.regenerated``.
    """
    _current_password_check(user=user, password=password, field="password", request=request)
    now = timezone.now()
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        if not TotpDevice.objects.filter(user_id=user.pk, confirmed_at__isnull=False).exists():
            raise DomainError("CONFLICT", "Turn on two-step verification first.")
        codes = _new_recovery_codes(user=user, now=now)
        send_templated_email(to=user.email, template="account_mfa_recovery_codes_regenerated",
                             context=_mail_context(user, recovery_codes=len(codes)))
        record(action="auth.mfa.recovery_codes.regenerated", target=user, actor=user,
               extra={"count": len(codes)})
    return codes


@transaction.atomic
def mfa_reset(*, user: User, actor: User) -> bool:
    """Staff (a superuser): remove every second factor of ``user``, who is emailed.

    For a user who lost their authenticator and their recovery codes. Idempotent:
    returns False when there was nothing to remove. Row-locks the user. Audits
    ``auth.mfa.reset`` with the staff member as actor.
    """
    User.objects.select_for_update().filter(pk=user.pk).first()
    if not (TotpDevice.objects.filter(user_id=user.pk).exists()
            or RecoveryCode.objects.filter(user_id=user.pk).exists()
            or Passkey.objects.filter(user_id=user.pk).exists()):
        return False
    removed = _factors_delete(user=user)
    passkeys_removed = Passkey.objects.filter(user_id=user.pk).delete()[0]
    send_templated_email(to=user.email, template="account_mfa_disabled", context=_mail_context(user, by_staff=True))
    record(action="auth.mfa.reset", target=user, actor=actor,
           extra={"devices_removed": removed, "passkeys_removed_count": passkeys_removed})
    return True


# --- upkeep -----------------------------------------------------------------------------------------
def totp_device_reencrypt(*, device_id) -> bool:
    """Re-seal one seed under the newest key (row lock); False when already on it or gone."""
    with transaction.atomic():
        device = TotpDevice.objects.select_for_update().filter(pk=device_id).first()
        if device is None or device.key_id == crypto.current_key_id():
            return False
        _seal(device, _open(device))
        device.save(update_fields=["secret_encrypted", "key_id"])
    return True


def totp_devices_reencrypt(*, stdout=None, stderr=None) -> tuple[int, int]:
    """Re-seal every TOTP seed not on the newest key: (re-sealed, failed). Resumable."""
    newest = crypto.current_key_id()
    done = failed = 0
    for pk in TotpDevice.objects.exclude(key_id=newest).values_list("pk", flat=True).iterator():
        try:
            done += totp_device_reencrypt(device_id=pk)
        except crypto.DecryptionError as exc:
            failed += 1
            if stderr is not None:
                stderr.write(f"TOTP device {pk}: {exc}")
    if done or failed:
        with transaction.atomic():
            record(action="auth.mfa.keys.rotated", outcome="success" if not failed else "failure",
                   target_type="accounts.totpdevice", target_id="*",
                   extra={"key_id": newest, "reencrypted": done, "failed": failed})
    return done, failed


def mfa_challenges_cleanup() -> int:
    """Delete login steps that can no longer be used (expired a day ago); returns how many."""
    deleted, _ = MfaChallenge.objects.filter(expires_at__lt=timezone.now() - timedelta(days=1)).delete()
    return deleted


def staff_mfa_verify(*, request, user: User, code: str) -> str:
    """The admin's code step: check and use up ``code``; returns the method ("totp", ...).

    429 ACCOUNT_LOCKED while locked; 401 INVALID_MFA_CODE for a wrong code, which
    counts toward the lockout. Audits ``auth.mfa.failed``.
    """
    _raise_if_locked(request=request, user=user, step="admin")
    now = timezone.now()
    try:
        with transaction.atomic():
            return _factor_use(user=user, code=code, now=now, allow_recovery=True)
    except _WrongCode as wrong:
        record(action="auth.mfa.failed", outcome="failure", target=user, actor=user,
               extra={"reason": wrong.reason, "step": "admin"})
        _count_failure(request=request, user=user)
        raise DomainError("INVALID_MFA_CODE", INVALID_CODE_DETAIL) from None


@transaction.atomic
def totp_demo_device_ensure(*, user: User) -> str:
    """Development only (``load_demo_data``): a confirmed authenticator for ``user``; its secret.

    Idempotent: an existing confirmed device that still opens is kept (its secret returned).
    No recovery codes, no email. Audits ``auth.mfa.totp.enabled`` when it creates one.
    """
    device = TotpDevice.objects.select_for_update().filter(user_id=user.pk, confirmed_at__isnull=False).first()
    if device is not None:
        try:
            return _open(device)
        except crypto.DecryptionError:
            device.delete()  # sealed with a development key that is gone
    TotpDevice.objects.filter(user_id=user.pk).delete()
    secret = totp.new_secret()
    device = TotpDevice(user=user, confirmed_at=timezone.now())
    _seal(device, secret)
    device.save(force_insert=True)
    record(action="auth.mfa.totp.enabled", target=user, actor=None, extra={"demo": True})
    return secret
