"""Passkeys (WebAuthn): registration, sign-in, the second-factor step, management.

py_webauthn builds the options and verifies every response (attestation, client
data, RP ID hash, origin, signature); nothing here parses CBOR or COSE. The RP ID
and the allowed origins come from WEBAUTHN_RP_ID / WEBAUTHN_ORIGINS. Challenges
live in the cache (``challenges``): at most WEBAUTHN_CHALLENGE_SECONDS, single-use,
bound to the user, or to the mfa_token of a login's second step.

Every change (registered, renamed, deleted) writes its audit row in the same
transaction and emails the owner on commit. A failed check is audited outside
any rolled-back transaction, so the trail keeps it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from accounts import lockout
from accounts.models import User, normalize_email
from accounts.passkeys import challenges
from accounts.passkeys.models import Passkey
from accounts.services import LoginResult, _current_password_check, _mail_context, login_complete
from audit.services import record
from dashtam.errors import DomainError, InvalidInput, RetryLater
from dashtam.mail import send_templated_email

PASSKEY = "passkey"
NAME_MAX = 64
DEFAULT_NAME = "Passkey"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SIGN_IN_FAILED = "The passkey could not be verified. Try again."
DEAD_CHALLENGE = "This passkey request has expired or was already used. Start again."
COUNTER_DETAIL = "This passkey was refused: it may have been copied. Sign in another way and review your passkeys."


class _Failure(Exception):
    """A passkey check that failed: ``reason`` for the audit trail, ``code`` for the client."""

    def __init__(self, *, reason: str, code: str = "INVALID_CREDENTIALS", detail: str = SIGN_IN_FAILED):
        super().__init__(reason)
        self.reason, self.code, self.detail = reason, code, detail


# --- helpers --------------------------------------------------------------------------------
def _user_verification() -> UserVerificationRequirement:
    return UserVerificationRequirement(settings.WEBAUTHN_USER_VERIFICATION)


def _uv_required() -> bool:
    return settings.WEBAUTHN_USER_VERIFICATION == "required"


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for value in passkey.transports or []:
        try:
            transports.append(AuthenticatorTransport(value))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(id=base64url_to_bytes(passkey.credential_id),
                                         transports=transports or None)


def _options_dict(options) -> dict:
    return json.loads(options_to_json(options))


def _timeout_ms() -> int:
    return settings.WEBAUTHN_CHALLENGE_SECONDS * 1000


def passkey_name_clean(name) -> str:
    """A passkey's name: trimmed, 1 to 64 characters, no control characters."""
    if name is None:
        return DEFAULT_NAME
    if not isinstance(name, str):
        raise InvalidInput({"name": ["Enter a name."]})
    name = " ".join(name.split())
    if not name:
        raise InvalidInput({"name": ["Enter a name."]})
    if len(name) > NAME_MAX or _CONTROL.search(name):
        raise InvalidInput({"name": [f"Use at most {NAME_MAX} printable characters."]})
    return name


def _credential_object(credential) -> dict:
    if not isinstance(credential, dict):
        raise InvalidInput({"credential": ["Send the credential as a JSON object (PublicKeyCredential.toJSON())."]})
    return credential


def _mail(user: User, template: str, **extra) -> None:
    send_templated_email(to=user.email, template=template, context=_mail_context(user, **extra))


# --- registration -------------------------------------------------------------------------------
def passkey_registration_options(*, user: User) -> dict:
    """POST auth/passkeys/registration/options: PublicKeyCredentialCreationOptions for ``user``.

    Discoverable credentials preferred, user verification as WEBAUTHN_USER_VERIFICATION,
    attestation "none", the user's passkeys excluded. The challenge is stored
    server-side, bound to the user. The user handle is the account's random UUID (no
    personal data). Writes nothing else; not audited (nothing changed).
    """
    existing = list(Passkey.objects.filter(user_id=user.pk))
    challenge = challenges.challenge_issue(purpose=challenges.REGISTER, user_id=user.pk)
    options = generate_registration_options(
        rp_id=settings.WEBAUTHN_RP_ID, rp_name=settings.WEBAUTHN_RP_NAME,
        user_id=user.pk.bytes, user_name=user.email, user_display_name=user.get_full_name() or user.email,
        challenge=challenge, timeout=_timeout_ms(), attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=_user_verification()),
        exclude_credentials=[_descriptor(p) for p in existing],
    )
    return _options_dict(options)


def passkey_register(*, user: User, credential, name=None) -> Passkey:
    """POST auth/passkeys/registration: verify the new credential and store it.

    The challenge must be one issued to this user for a registration (it is spent
    either way). 400 VALIDATION_ERROR (``credential``) when py_webauthn refuses the
    response (wrong origin, RP ID, challenge, or a malformed attestation); 409
    CONFLICT when the credential is already registered or the account has
    WEBAUTHN_MAX_PASSKEYS. Row-locks the user. Audits ``auth.passkey.registered``
    and emails the owner; a refused response audits ``auth.passkey.failed``.
    """
    name = passkey_name_clean(name)
    credential = _credential_object(credential)
    entry = challenges.challenge_take(challenge=challenges.challenge_from_credential(credential))
    reason = None
    if entry is None:
        reason = "challenge_unknown_or_used"
    elif entry.get("purpose") != challenges.REGISTER or entry.get("user_id") != str(user.pk):
        reason = "challenge_not_for_this_user"
    verified = None
    if reason is None:
        try:
            verified = verify_registration_response(
                credential=credential, expected_challenge=challenges.challenge_from_credential(credential),
                expected_rp_id=settings.WEBAUTHN_RP_ID, expected_origin=list(settings.WEBAUTHN_ORIGINS),
                require_user_verification=_uv_required(),
            )
        except Exception as exc:  # noqa: BLE001 - py_webauthn raises many types for bad input
            reason = f"verification_failed:{type(exc).__name__}"
        else:
            # The id the browser names must be the one the authenticator attested.
            if not hmac.compare_digest(str(credential.get("rawId", "")).rstrip("="),
                                       bytes_to_base64url(verified.credential_id)):
                reason = "credential_id_mismatch"
    if reason is not None:
        record(action="auth.passkey.failed", outcome="failure", target=user, actor=user,
               extra={"step": "register", "reason": reason})
        raise InvalidInput({"credential": ["The passkey could not be registered: the request expired, "
                                              "was already used, or the response did not verify."]})
    transports = (credential.get("response") or {}).get("transports")
    transports = [t for t in transports if isinstance(t, str)][:8] if isinstance(transports, list) else []
    try:
        with transaction.atomic():
            User.objects.select_for_update().filter(pk=user.pk).first()
            if Passkey.objects.filter(user_id=user.pk).count() >= settings.WEBAUTHN_MAX_PASSKEYS:
                raise DomainError("CONFLICT", f"An account can have at most {settings.WEBAUTHN_MAX_PASSKEYS} "
                                               "passkeys. Delete one first.")
            passkey = Passkey.objects.create(
                user=user, name=name, credential_id=bytes_to_base64url(verified.credential_id),
                public_key=verified.credential_public_key, sign_count=verified.sign_count,
                transports=transports, aaguid=str(verified.aaguid or ""),
                backup_eligible=verified.credential_device_type == "multi_device",
                backed_up=bool(verified.credential_backed_up),
            )
            record(action="auth.passkey.registered", target=passkey, actor=user,
                   extra={"passkey_id": str(passkey.pk), "name": name, "aaguid": passkey.aaguid})
            _mail(user, "account_passkey_added", passkey_name=name)
    except IntegrityError:
        raise DomainError("CONFLICT", "This passkey is already registered.") from None
    return passkey


# --- management ------------------------------------------------------------------------------------
def _own(*, user: User, passkey_id) -> Passkey:
    """The user's passkey ``passkey_id``, row-locked; 404 for another user's or an unknown id."""
    passkey = Passkey.objects.select_for_update().filter(pk=passkey_id, user_id=user.pk).first()
    if passkey is None:
        raise DomainError("NOT_FOUND", "No such passkey.")
    return passkey


@transaction.atomic
def passkey_rename(*, user: User, passkey_id, name) -> Passkey:
    """PATCH auth/passkeys/{id}: a new name. Idempotent (the same name changes nothing).

    404 for another user's passkey. Audits ``auth.passkey.renamed`` and emails the owner.
    """
    name = passkey_name_clean(name)
    passkey = _own(user=user, passkey_id=passkey_id)
    if passkey.name == name:
        return passkey
    old = passkey.name
    passkey.name = name
    passkey.save(update_fields=["name"])
    record(action="auth.passkey.renamed", target=passkey, actor=user,
           extra={"passkey_id": str(passkey.pk), "old_name": old, "name": name})
    _mail(user, "account_passkey_renamed", passkey_name=name, old_name=old)
    return passkey


def passkey_delete(*, user: User, passkey_id, password=None, assertion=None, request=None) -> None:
    """DELETE auth/passkeys/{id}: needs the password, or (for an account without a usable
    password) a fresh passkey assertion of this user's.

    404 for another user's passkey (checked before the password, which then is not
    counted). A wrong password answers as change-password does (400, counts toward the
    lockout). Audits ``auth.passkey.deleted`` and emails the owner.
    """
    if not Passkey.objects.filter(pk=passkey_id, user_id=user.pk).exists():
        raise DomainError("NOT_FOUND", "No such passkey.")
    if user.has_usable_password():
        _current_password_check(user=user, password=password if password is not None else "",
                                field="password", request=request)
    else:
        if assertion is None:
            raise InvalidInput({"passkey": ["Confirm with one of your passkeys."]})
        try:
            passkey_assertion_verify(credential=assertion, purposes=(challenges.LOGIN,), user=user,
                                     step="delete", request=request)
        except _Failure as failure:
            raise DomainError(failure.code, failure.detail) from None
    with transaction.atomic():
        passkey = _own(user=user, passkey_id=passkey_id)
        name = passkey.name
        passkey_pk = str(passkey.pk)
        passkey.delete()
        remaining = Passkey.objects.filter(user_id=user.pk).count()
        record(action="auth.passkey.deleted", target=user, actor=user,
               extra={"passkey_id": passkey_pk, "name": name, "remaining": remaining})
        _mail(user, "account_passkey_removed", passkey_name=name, remaining=remaining)


# --- sign-in ---------------------------------------------------------------------------------------------
def _decoy_credential_id(email: str) -> bytes:
    """A stable fake credential id for an address with no passkeys, so the options do not tell."""
    return hmac.new(settings.SECRET_KEY.encode(), b"passkey-decoy:" + email.encode(), hashlib.sha256).digest()


def passkey_authentication_options(*, email: str | None = None, mfa_user: User | None = None,
                                   mfa_token_hash: str = "") -> dict:
    """POST auth/passkeys/authentication/options: PublicKeyCredentialRequestOptions.

    With nothing: usernameless (discoverable credentials; the challenge is bound to
    no user). With ``email``: the account's passkeys are allowed and the challenge is
    bound to it; an unknown address (or one without passkeys) gets the same shape of
    answer with a stable decoy credential, so the answer does not tell whether the
    address has an account. With ``mfa_user``: the second-factor step of that
    mfa_token (its hash binds the challenge). Writes nothing but the challenge.
    """
    allow: list[PublicKeyCredentialDescriptor] = []
    user_id = None
    purpose = challenges.LOGIN
    if mfa_user is not None:
        purpose, user_id = challenges.MFA, mfa_user.pk
        allow = [_descriptor(p) for p in Passkey.objects.filter(user_id=mfa_user.pk)]
    elif email is not None:
        email = normalize_email(email)
        owner = User.objects.filter(email=email, is_active=True).first()
        passkeys = list(Passkey.objects.filter(user_id=owner.pk)) if owner is not None else []
        if passkeys:
            user_id = owner.pk
            allow = [_descriptor(p) for p in passkeys]
        else:
            allow = [PublicKeyCredentialDescriptor(
                id=_decoy_credential_id(email),
                transports=[AuthenticatorTransport.INTERNAL, AuthenticatorTransport.HYBRID])]
            # Bound to a user that does not exist: nothing can ever verify against it.
            user_id = "none:" + hashlib.sha256(email.encode()).hexdigest()
    challenge = challenges.challenge_issue(purpose=purpose, user_id=user_id, mfa_token_hash=mfa_token_hash)
    options = generate_authentication_options(
        rp_id=settings.WEBAUTHN_RP_ID, challenge=challenge, timeout=_timeout_ms(),
        allow_credentials=allow, user_verification=_user_verification(),
    )
    return _options_dict(options)


def passkey_assertion_verify(*, credential, purposes: tuple[str, ...], user: User | None = None,
                             mfa_token_hash: str = "", step: str = "login", request=None) -> Passkey:
    """Verify an assertion and record the use. Returns the passkey; raises ``_Failure``.

    The challenge is spent first (any attempt uses it up). It must be for one of
    ``purposes``, bound to ``user`` when given (or to the user its options named),
    and to ``mfa_token_hash`` for the second-factor step. The credential must be a
    registered passkey of that user; a userHandle, when sent, must be its account's.
    py_webauthn checks the client data (type, challenge, origin in WEBAUTHN_ORIGINS),
    the RP ID hash, user presence (and verification when required) and the signature.
    A sign count that does not move forward (when either side is non-zero) is
    refused after the signature verified, and audited as ``auth.passkey.counter_regressed``
    (a possible cloned authenticator). Other failures audit ``auth.passkey.failed``.
    On success the sign count, backup state and last use are saved (conditional
    UPDATE: of two concurrent uses of one count, one wins).
    """
    if not isinstance(credential, dict):
        raise InvalidInput({"credential": ["Send the credential as a JSON object (PublicKeyCredential.toJSON())."]})
    challenge = challenges.challenge_from_credential(credential)
    entry = challenges.challenge_take(challenge=challenge)
    passkey = None
    raw_id = credential.get("rawId") if isinstance(credential.get("rawId"), str) else credential.get("id")
    if isinstance(raw_id, str) and 0 < len(raw_id) <= 1400:
        passkey = Passkey.objects.select_related("user").filter(credential_id=raw_id.rstrip("=")).first()
    owner = passkey.user if passkey is not None else user

    def fail(reason: str, code: str = "INVALID_CREDENTIALS", detail: str = SIGN_IN_FAILED,
             action: str = "auth.passkey.failed", outcome: str = "failure"):
        extra = {"step": step, "reason": reason}
        if passkey is not None:
            extra["passkey_id"] = str(passkey.pk)
        with transaction.atomic():
            record(action=action, outcome=outcome, target=owner, actor=owner, extra=extra)
        return _Failure(reason=reason, code=code, detail=detail)

    if entry is None:
        raise fail("challenge_unknown_or_used", code="TOKEN_INVALID", detail=DEAD_CHALLENGE)
    if entry.get("purpose") not in purposes:
        raise fail("challenge_wrong_purpose", code="TOKEN_INVALID", detail=DEAD_CHALLENGE)
    if mfa_token_hash and not hmac.compare_digest(entry.get("mfa") or "", mfa_token_hash):
        raise fail("challenge_not_for_this_step", code="TOKEN_INVALID", detail=DEAD_CHALLENGE)
    if passkey is None:
        raise fail("unknown_credential")
    if user is not None and passkey.user_id != user.pk:
        raise fail("credential_of_another_user")
    bound = entry.get("user_id") or ""
    if bound and bound != str(passkey.user_id):
        raise fail("credential_of_another_user")
    handle = (credential.get("response") or {}).get("userHandle") if isinstance(credential.get("response"), dict) else None
    if handle:
        try:
            handle_ok = base64url_to_bytes(handle) == passkey.user_id.bytes
        except Exception:  # noqa: BLE001
            handle_ok = False
        if not handle_ok:
            raise fail("user_handle_mismatch")
    try:
        # The counter is compared below, after the signature proved the response genuine,
        # so that a forged response cannot raise a "cloned authenticator" alarm.
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=settings.WEBAUTHN_RP_ID,
            expected_origin=list(settings.WEBAUTHN_ORIGINS), credential_public_key=bytes(passkey.public_key),
            credential_current_sign_count=0, require_user_verification=_uv_required(),
        )
    except Exception as exc:  # noqa: BLE001 - py_webauthn raises many types for bad input
        raise fail(f"verification_failed:{type(exc).__name__}") from None
    new_count, old_count = verified.new_sign_count, passkey.sign_count
    if (new_count or old_count) and new_count <= old_count:
        raise fail("sign_count_not_increased", code="TOKEN_INVALID", detail=COUNTER_DETAIL,
                   action="auth.passkey.counter_regressed", outcome="denied")
    now = timezone.now()
    updated = Passkey.objects.filter(pk=passkey.pk, sign_count=old_count).update(
        sign_count=new_count, last_used_at=now, backed_up=bool(verified.credential_backed_up))
    if not updated:
        raise fail("sign_count_raced", code="TOKEN_INVALID", detail=COUNTER_DETAIL,
                   action="auth.passkey.counter_regressed", outcome="denied")
    passkey.sign_count, passkey.last_used_at = new_count, now
    return passkey


def _raise_if_locked(*, request, user: User, step: str) -> None:
    state = lockout.lockout_state_for_request(request, {"email": user.email})
    # Tells the lockout handler whether a completed sign-in has attempts to delete.
    request.dashtam_account_attempts = state.account_has_attempts
    if state.locked:
        with transaction.atomic():
            record(action="auth.passkey.failed", outcome="denied", target=user, actor=user,
                   extra={"step": step, "reason": "locked"})
        raise RetryLater("ACCOUNT_LOCKED", lockout.LOCKED_DETAIL, retry_after=max(1, state.retry_after))


def passkey_login(*, request, credential) -> LoginResult:
    """POST auth/passkeys/authentication: a passkey alone signs in (it is phishing-resistant).

    401 TOKEN_INVALID for an unknown, expired or used challenge and for a sign count
    that went backwards; 401 INVALID_CREDENTIALS for an assertion that does not
    verify; 403 EMAIL_NOT_VERIFIED / 401 for an inactive account; 429 ACCOUNT_LOCKED
    while the account is locked. Ends in the normal login: a session whose
    auth_methods are ["passkey"], ``auth.login.succeeded``.
    """
    try:
        passkey = passkey_assertion_verify(credential=credential, purposes=(challenges.LOGIN,), step="login",
                                           request=request)
    except _Failure as failure:
        raise DomainError(failure.code, failure.detail) from None
    user = passkey.user
    if not user.is_active:
        raise DomainError("INVALID_CREDENTIALS", SIGN_IN_FAILED)
    _raise_if_locked(request=request, user=user, step="login")
    if not user.is_verified:
        with transaction.atomic():
            record(action="auth.login.unverified", outcome="denied", target=user, actor=user)
        raise DomainError("EMAIL_NOT_VERIFIED", "Verify your email address before logging in.")
    return login_complete(request=request, user=user, auth_methods=[PASSKEY])


# --- the second-factor step (accounts/mfa) ------------------------------------------------------------
def passkey_mfa_options(*, request, mfa_token: str) -> dict:
    """Request options for the second step of a password login: bound to ``mfa_token``.

    401 TOKEN_INVALID for a dead token (or another client's); 409 CONFLICT when the
    account has no passkey (finish with a code instead).
    """
    try:
        from accounts.mfa.services import _live_challenge
        from accounts.mfa.totp import token_hash
    except ImportError:  # no second-factor step in this build: no mfa_token can be alive
        raise DomainError("TOKEN_INVALID", DEAD_CHALLENGE) from None

    step = _live_challenge(request=request, mfa_token=mfa_token)
    if not Passkey.objects.filter(user_id=step.user_id).exists():
        raise DomainError("CONFLICT", "This account has no passkey: finish with a code.")
    return passkey_authentication_options(mfa_user=step.user, mfa_token_hash=token_hash(mfa_token))


def passkey_mfa_verify(*, request, mfa_token: str, credential) -> LoginResult:
    """POST auth/login/mfa {mfa_token, passkey}: a passkey as the second factor.

    The assertion must answer options issued for this mfa_token and come from one of
    the account's passkeys. 401 TOKEN_INVALID for a dead mfa_token (as for codes) and
    for a sign counter that went backwards; 429 ACCOUNT_LOCKED while locked; any other
    failure is a wrong code: 401 INVALID_MFA_CODE, counted toward the lockout and the
    token's MFA_TOKEN_MAX_FAILURES. On success the token is spent and the session
    starts in one transaction, its auth_methods the first factor's plus "passkey".
    """
    from django.db.models import F

    from accounts.mfa import services as mfa
    from accounts.mfa.models import MfaChallenge
    from accounts.mfa.totp import token_hash

    step = mfa._live_challenge(request=request, mfa_token=mfa_token)
    user = step.user
    mfa._raise_if_locked(request=request, user=user, step="login")
    try:
        passkey_assertion_verify(credential=credential, purposes=(challenges.MFA,), user=user,
                                 mfa_token_hash=token_hash(mfa_token), step="mfa", request=request)
    except _Failure as failure:
        MfaChallenge.objects.filter(pk=step.pk).update(failures=F("failures") + 1)
        if not failure.reason.startswith("sign_count"):
            mfa._count_failure(request=request, user=user)
            raise DomainError("INVALID_MFA_CODE", mfa.INVALID_CODE_DETAIL) from None
        raise DomainError(failure.code, failure.detail) from None
    now = timezone.now()
    with transaction.atomic():
        spent = MfaChallenge.objects.filter(
            pk=step.pk, used_at__isnull=True, expires_at__gt=now, failures__lt=settings.MFA_TOKEN_MAX_FAILURES,
        ).update(used_at=now)
        if not spent:
            raise DomainError("TOKEN_INVALID", mfa.DEAD_TOKEN_DETAIL)
        return login_complete(request=request, user=user, auth_methods=[*step.methods_done, PASSKEY])
