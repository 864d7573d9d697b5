"""Accounts services: registration, verification, login, password and profile flows.

Every flow writes its audit row through ``audit.services.record`` in the same
transaction as the change, and sends its email with ``send_templated_email``
(enqueued on commit: a rolled-back change sends nothing, and a mail failure
never fails the request).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth import authenticate, password_validation, user_logged_in
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import lockout
from accounts.models import AccountToken, User, normalize_email
from accounts.tokens import account_token_issue, account_token_take, account_tokens_revoke, lifetime
from audit.services import batched as audit_batched
from audit.services import record
from dashtam.errors import DomainError, InvalidInput, RetryLater
from dashtam.mail import send_templated_email

Purpose = AccountToken.Purpose


# --- Helpers ----------------------------------------------------------------------
def password_policy_check(*, password: str, user: User, field: str = "password") -> None:
    """Raise VALIDATION_ERROR listing every rule of the password policy ``password`` breaks."""
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise InvalidInput({field: list(exc.messages)}) from None


def _url(path: str) -> str:
    return f"{settings.FRONTEND_URL}{path}"


def _link(path: str, token: str) -> str:
    return f"{_url(path)}?token={token}"


def _mail_context(user: User, **extra) -> dict:
    # A name is text its account chose: it is printed only once the address has proven
    # itself, so an account opened in someone else's name cannot put words in their inbox.
    # (The emails to unproven addresses print no name in any case: templates/email.)
    return {"email": user.email, "first_name": user.first_name if user.is_verified else "", **extra}


def _valid_for(purpose: str) -> str:
    """The token lifetime in words, for the email ("24 hours", "15 minutes")."""
    minutes = int(lifetime(purpose).total_seconds() // 60)
    if minutes >= 60 and minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _send_token_email(*, user: User, to: str, purpose: str, token: str, template: str, path: str) -> None:
    send_templated_email(to=to, template=template, context=_mail_context(
        user, token=token, link=_link(path, token), valid_for=_valid_for(purpose),
    ))


def _verification_send(*, user: User) -> None:
    token = account_token_issue(user=user, purpose=Purpose.VERIFY_EMAIL)
    _send_token_email(user=user, to=user.email, purpose=Purpose.VERIFY_EMAIL, token=token,
                      template="account_verify_email", path="/verify-email")


# --- Registration and verification --------------------------------------------------
def user_register(*, email: str, password: str, first_name: str = "", last_name: str = "") -> None:
    """Register an address. Returns nothing, so the caller cannot tell the two cases apart.

    A new address gets an unverified account and a verification email. A taken
    address gets a "someone tried to sign up" email, no account, and the same
    password-hashing cost. A password that breaks the policy is refused first, taken
    address or not (400 VALIDATION_ERROR on ``password``, every broken rule listed).
    Audits ``auth.register.requested`` or ``auth.register.duplicate``.
    """
    email = normalize_email(email)
    # The similarity check compares the password with the address and names given here.
    probe = User(email=email, first_name=first_name, last_name=last_name)
    password_policy_check(password=password, user=probe)
    existing = User.objects.filter(email=email).first()
    if existing is None:
        try:
            with transaction.atomic():
                user = User.objects.create_user(
                    email=email, password=password, first_name=first_name, last_name=last_name,
                )
                _verification_send(user=user)
                record(action="auth.register.requested", target=user, actor=user)
            return
        except IntegrityError:
            # A concurrent registration of the same address won the race.
            existing = User.objects.filter(email=email).first()
            if existing is None:
                raise
    else:
        make_password(password)  # the cost of hashing a new account's password
    with transaction.atomic():
        send_templated_email(to=existing.email, template="account_register_existing",
                             context=_mail_context(existing, login_link=_url("/login"), reason="sign_up"))
        record(action="auth.register.duplicate", outcome="denied", target=existing)


def email_verify(*, token: str) -> User:
    """Use a verification (or email change) link. Single-use; row-locks the token and user.

    Verifying an already verified account changes nothing. An email change takes
    effect here, the old address is told, and other pending changes die.
    Audits ``auth.email.verified`` or ``auth.email_change.confirmed``, and
    ``auth.email.verification_failed`` for a bad, expired or used token.
    """
    try:
        return _email_verify(token=token)
    except DomainError as exc:
        record(action="auth.email.verification_failed", outcome="failure",
               extra={"reason": str(exc.detail), "problem_code": exc.problem_code})
        raise


@transaction.atomic
def _email_verify(*, token: str) -> User:
    row = account_token_take(token=token, purposes=[Purpose.VERIFY_EMAIL, Purpose.CHANGE_EMAIL])
    user = row.user
    now = timezone.now()
    if row.purpose == Purpose.VERIFY_EMAIL:
        if user.email_verified_at is None:
            user.email_verified_at = now
            user.save(update_fields=["email_verified_at"])
            record(action="auth.email.verified", target=user, actor=user)
        return user
    new_email = normalize_email(row.new_email)
    if User.objects.filter(email=new_email).exclude(pk=user.pk).exists():
        raise DomainError("CONFLICT", "This email address is already in use.")
    old_email = user.email
    user.email = new_email
    user.email_verified_at = now
    user.save(update_fields=["email", "email_verified_at"])
    # Links mailed to the old address (a reset among them) must not outlive the move.
    account_tokens_revoke(user=user, purposes=Purpose.values, now=now)
    send_templated_email(to=old_email, template="account_email_changed",
                         context=_mail_context(user, old_email=old_email, new_email=new_email))
    record(action="auth.email_change.confirmed", target=user, actor=user,
           extra={"old_email": old_email, "new_email": new_email})
    return user


def verification_resend_enqueue(*, email: str) -> None:
    """The API's resend: one task enqueued on commit, whatever the address.

    The lookup, the token and the email happen in the task, so the response takes
    the same time for a registered and an unknown address.
    """
    from accounts.tasks import verification_resend_for
    from dashtam.outbox.services import enqueue

    enqueue(verification_resend_for, normalize_email(email))


def password_reset_request_enqueue(*, email: str) -> None:
    """The API's reset request: one task enqueued on commit, whatever the address."""
    from accounts.tasks import password_reset_request_for
    from dashtam.outbox.services import enqueue

    enqueue(password_reset_request_for, normalize_email(email))


@transaction.atomic
def verification_resend(*, email: str) -> bool:
    """Send a new verification link to an unverified, active account; earlier links die.

    Returns whether an email was sent (the API never tells). Audits
    ``account.verification_resent`` when it sends.
    """
    user = User.objects.filter(email=normalize_email(email), is_active=True).first()
    if user is None or user.is_verified:
        return False
    _verification_send(user=user)
    record(action="account.verification_resent", target=user, actor=user)
    return True


# --- Login ----------------------------------------------------------------------------
# Login runs in steps: ``login_password_check`` proves the password,
# ``accounts.mfa.services.login_next_step`` asks for the second factor when the account
# has one (an mfa_token instead of tokens), and ``login_complete`` issues the tokens.
@dataclass(frozen=True)
class LoginResult:
    """What a completed login answers with: the user, the session's first token pair, the
    access token's lifetime in seconds and the new session's id."""

    user: User
    access: str
    refresh: str
    expires_in: int
    session_id: str


def login_password_check(*, request, email: str, password: str) -> User:
    """Step 1: the password, through django-axes. Returns the verified, active user.

    Raises 429 ACCOUNT_LOCKED (Retry-After: the real seconds left) while the
    address or the client IP is locked, whatever the password, and whether or
    not the account exists; 401 INVALID_CREDENTIALS otherwise on failure (an
    unknown address costs one dummy hash, like a wrong password); 403
    EMAIL_NOT_VERIFIED only after a correct password. ``authenticate`` fires
    ``user_login_failed``, which axes counts. Audits ``auth.login.failed`` and
    ``auth.lockout`` when this failure locks the account (and emails the owner).
    """
    email = normalize_email(email)
    user = authenticate(request, email=email, password=password)
    if user is None:
        _login_failed(request=request, email=email)
    if not user.is_verified:
        record(action="auth.login.unverified", outcome="denied", target=user, actor=user)
        raise DomainError("EMAIL_NOT_VERIFIED", "Verify your email address before logging in.")
    return user


def _login_failed(*, request, email: str) -> None:
    # The client is anonymous; the attempted account is recorded as actor and target,
    # so staff find every attempt on an account under its email.
    owner = User.objects.filter(email=email).first()
    if not getattr(request, "axes_locked_out", False):
        record(action="auth.login.failed", outcome="failure", target=owner, actor=owner,
               extra={"email": email, "reason": "invalid_credentials"})
        raise DomainError("INVALID_CREDENTIALS", "Email or password is incorrect.")
    # The failure that set an account's lock was audited, and its owner emailed, by the
    # lockout handler (``lockout_notice``), whichever login form or password check it came from.
    state = lockout.lockout_state_for_request(request, {"email": email})
    record(action="auth.login.failed", outcome="denied", target=owner, actor=owner,
           extra={"email": email, "reason": "locked"})
    raise RetryLater("ACCOUNT_LOCKED", lockout.LOCKED_DETAIL, retry_after=max(1, state.retry_after))


def lockout_notice(*, request, email: str) -> bool:
    """The failure that just locked the account of ``email``: audit it and tell the owner.

    Called by the lockout handler once per lock, for every way of failing a password
    (the API login, the admin's login page, a password re-check). Audits ``auth.lockout``
    and sends the "account locked" email with a single-use "unlock and sign in" link.
    Returns False, doing nothing, for an address without an account or when only the
    client IP is locked.
    """
    owner = User.objects.filter(email=email).first()
    if owner is None:
        return False
    state = lockout.lockout_state_for_request(request, {"email": email})
    if not state.account_locked:
        return False
    with transaction.atomic():
        record(action="auth.lockout", outcome="denied", target=owner, actor=owner,
               extra={"failures": state.account_failures, "retry_after": state.retry_after})
        _lockout_notice_send(owner=owner, minutes=max(1, state.retry_after // 60))
    return True


def _lockout_notice_send(*, owner: User, minutes: int) -> None:
    """The "account locked" email, with a single-use "unlock and sign in" link for an active owner."""
    context = _mail_context(owner, minutes=minutes, reset_link=_url("/forgot-password"))
    if owner.is_active:
        token = account_token_issue(user=owner, purpose=Purpose.UNLOCK)
        context.update(token=token, unlock_link=_link("/unlock", token), valid_for=_valid_for(Purpose.UNLOCK))
    send_templated_email(to=owner.email, template="account_locked", context=context)


def login_complete(*, request, user: User, auth_methods: list[str] | None = None) -> LoginResult:
    """Final step: start the session and issue its tokens.

    ``auth_methods`` are the factors this login proved (["password"], ["password",
    "totp"], ...): the session records them and the access token carries them as ``amr``.
    Fires ``user_logged_in`` (axes resets the account's failure counter; Django
    updates ``last_login``) because simplejwt does neither. Audits ``auth.login.succeeded``.
    """
    from sessions_mgmt.services import session_start

    auth_methods = list(auth_methods or ["password"])
    # One transaction; the login's audit events (session.created, auth.login.succeeded) in one INSERT.
    with transaction.atomic(), audit_batched():
        issued = session_start(user=user, request=request, auth_methods=auth_methods)
        user_logged_in.send(sender=user.__class__, request=request, user=user)
        record(action="auth.login.succeeded", target=user, actor=user,
               extra={"session_id": str(issued.session.id), "auth_methods": auth_methods})
    return LoginResult(user=user, access=issued.access, refresh=issued.refresh,
                       expires_in=issued.expires_in, session_id=str(issued.session.id))


def login(*, request, email: str, password: str):
    """Password, then the second factor when the account has one, then tokens.

    Returns a ``LoginResult``, or an ``accounts.mfa.services.MfaRequired`` (no session
    yet) for an account with a confirmed second factor. ``request`` is Django's HttpRequest.
    """
    from accounts.mfa.services import login_next_step

    user = login_password_check(request=request, email=email, password=password)
    return login_next_step(request=request, user=user, method="password")


# --- Magic links (sign in by email) ------------------------------------------------------
def magic_link_request_enqueue(*, email: str, requested_ip: str | None) -> None:
    """The API's magic-link request: one task enqueued on commit (through the outbox),
    whatever the address.

    As for the reset request, the lookup, the token and the email happen in the
    task, so a known and an unknown address cost the request the same.
    """
    from accounts.tasks import magic_link_request_for
    from dashtam.outbox.services import enqueue

    enqueue(magic_link_request_for, normalize_email(email), requested_ip)


@transaction.atomic
def magic_link_request(*, email: str, requested_ip: str | None = None) -> bool:
    """Email a sign-in link (valid MAGIC_LINK_TOKEN_MINUTES, single-use) to an active account.

    A newer link kills the older ones (``account_token_issue``). Only the SHA-256
    of the 256-bit token is stored, with the requesting IP. Returns whether an
    email was sent (the API never tells). Audits ``auth.magic_link.requested``
    with the requesting IP.
    """
    user = User.objects.filter(email=normalize_email(email), is_active=True).first()
    if user is None:
        return False
    token = account_token_issue(user=user, purpose=Purpose.MAGIC_LINK, requested_ip=requested_ip)
    _send_token_email(user=user, to=user.email, purpose=Purpose.MAGIC_LINK, token=token,
                      template="account_magic_link", path="/magic-link")
    record(action="auth.magic_link.requested", target=user, actor=user,
           extra={"requested_ip": requested_ip or ""})
    return True


def magic_link_verify(*, request, token: str):
    """Use a magic link: the emailed token proves the mailbox, in place of the password.

    Single-use (row-locks the token); marks the email verified; then the login
    continues exactly as after a correct password (``login_next_step``:
    tokens, or the second-factor step when the account has one; the session's
    ``auth_methods`` start with "magic_link"). A locked account
    (or client IP) is refused with 429 ACCOUNT_LOCKED and the link stays unused.
    Audits ``auth.magic_link.used`` (requesting and using IP) or
    ``auth.magic_link.failed``.
    """
    user = None
    try:
        with transaction.atomic():
            row = account_token_take(token=token, purposes=[Purpose.MAGIC_LINK])
            user = row.user
            state = lockout.lockout_state_for_request(request, {"email": user.email})
            # As for a password: the IP lock does not hold a client known to the account.
            if state.account_locked or (state.ip_locked
                                        and not lockout.known_client(request, username=user.email)):
                raise RetryLater("ACCOUNT_LOCKED", lockout.LOCKED_DETAIL,
                                      retry_after=max(1, state.retry_after))
            if user.email_verified_at is None:
                user.email_verified_at = timezone.now()
                user.save(update_fields=["email_verified_at"])
                record(action="auth.email.verified", target=user, actor=user)
            record(action="auth.magic_link.used", target=user, actor=user,
                   extra={"requested_ip": row.requested_ip or ""})
    except DomainError as exc:
        record(action="auth.magic_link.failed", outcome="denied" if user else "failure",
               target=user, actor=user,
               extra={"reason": str(exc.detail), "problem_code": exc.problem_code})
        raise
    from accounts.mfa.services import login_next_step

    return login_next_step(request=request, user=user, method="magic_link")
def lockout_unlock(*, request, token: str) -> LoginResult:
    """The lockout email's "unlock and sign in" link: end the account's lock, sign the owner in.

    Single-use (row-locks the token and marks it used), valid UNLOCK_TOKEN_MINUTES, and
    only the newest link works. The link proves the mailbox, so the email is marked
    verified. The account's failed attempts are deleted (``lockout_clear``); the client
    IP's are not. Audits ``auth.lockout.unlocked`` (``auth.lockout.cleared``,
    ``auth.login.succeeded``), or ``auth.lockout.unlock_failed`` for a bad, expired or
    used token (400 INVALID_TOKEN).
    """
    try:
        with transaction.atomic():
            row = account_token_take(token=token, purposes=[Purpose.UNLOCK])
            user = row.user
            if user.email_verified_at is None:
                user.email_verified_at = timezone.now()
                user.save(update_fields=["email_verified_at"])
            lockout_clear(email=user.email, actor=user)
            record(action="auth.lockout.unlocked", target=user, actor=user)
            # An account with a second factor still needs it: the link ends the lock, not the MFA step.
            from accounts.mfa.services import login_next_step

            return login_next_step(request=request, user=user, method="unlock_link")
    except DomainError as exc:
        record(action="auth.lockout.unlock_failed", outcome="failure",
               extra={"reason": str(exc.detail), "problem_code": exc.problem_code})
        raise


def account_tokens_cleanup(*, keep_days: int = 7) -> int:
    """Delete email tokens expired more than ``keep_days`` ago; returns how many.

    Idempotent: a second run finds nothing. Expired tokens are kept a few days so
    a late click still reads "expired" rather than "unknown" in the audit trail.
    """
    cutoff = timezone.now() - timedelta(days=keep_days)
    deleted, _ = AccountToken.objects.filter(expires_at__lt=cutoff).delete()
    return deleted


# --- Lockout -----------------------------------------------------------------------
def lockout_clear(*, email: str, actor: User | None = None) -> int:
    """Unlock an address: delete its axes attempts, as ``manage.py axes_reset_username`` does.

    Returns the number of attempts removed; idempotent. Audits ``auth.lockout.cleared``
    when something was removed.
    """
    email = normalize_email(email)
    with transaction.atomic():
        count = axes_reset(username=email)
        if count:
            owner = User.objects.filter(email=email).first()
            record(action="auth.lockout.cleared", target=owner, actor=actor,
                   target_type="" if owner else "accounts.user", target_repr="" if owner else email,
                   extra={"email": email, "attempts_removed": count})
    return count


# --- Passwords --------------------------------------------------------------------------
@transaction.atomic
def password_reset_request(*, email: str, actor: User | None = None) -> bool:
    """Email a reset link (valid PASSWORD_RESET_TOKEN_MINUTES) to an active account.

    Earlier reset links die. Returns whether an email was sent (the API never
    tells). Audits ``auth.password.reset_requested`` when it sends; ``actor``
    is the staff member when sent from the admin.
    """
    user = User.objects.filter(email=normalize_email(email), is_active=True).first()
    if user is None:
        return False
    token = account_token_issue(user=user, purpose=Purpose.RESET_PASSWORD)
    _send_token_email(user=user, to=user.email, purpose=Purpose.RESET_PASSWORD, token=token,
                      template="account_password_reset", path="/reset-password")
    record(action="auth.password.reset_requested", target=user, actor=actor or user,
           extra={"by_staff": actor is not None})
    return True


@transaction.atomic
def password_reset_confirm(*, token: str, new_password: str) -> User:
    """Set a new password from a reset link. Single-use; row-locks the token and user.

    Ends every session, kills the other reset links and pending email changes, rotates the user's provider
    tokens, clears the lockout, verifies the email (the link proved the mailbox)
    and sends a confirmation. Audits ``auth.password.reset``.
    """
    from providers.services import provider_tokens_rotate_for_user
    from sessions_mgmt.services import sessions_revoke_all

    row = account_token_take(token=token, purposes=[Purpose.RESET_PASSWORD])
    user = row.user
    password_policy_check(password=new_password, user=user, field="new_password")
    now = timezone.now()
    user.set_password(new_password)
    fields = ["password"]
    if user.email_verified_at is None:
        user.email_verified_at = now
        fields.append("email_verified_at")
    user.save(update_fields=fields)
    # Other reset links and pending email changes die: an email change started by whoever
    # knew the old password must not outlive the new one.
    account_tokens_revoke(user=user, purposes=[Purpose.RESET_PASSWORD, Purpose.CHANGE_EMAIL], now=now)
    sessions_revoke_all(user=user, reason="password_reset", actor=user)
    provider_tokens_rotate_for_user(user=user, reason="password_reset")
    lockout_clear(email=user.email, actor=user)
    send_templated_email(to=user.email, template="account_password_reset_done", context=_mail_context(user))
    record(action="auth.password.reset", target=user, actor=user)
    return user


def _current_password_check(*, user: User, password: str, field: str, request=None) -> None:
    """Re-check the password of a signed-in user before a sensitive change.

    With the HTTP request, the check goes through ``authenticate()``, so django-axes
    counts a wrong password toward the account's lockout exactly like a failed login:
    someone holding a stolen access token cannot guess the password at the API's pace.
    While the account is locked the answer is 429 ACCOUNT_LOCKED, whatever the password.
    """
    if not isinstance(password, str):
        password = ""
    if request is None:
        ok = user.check_password(password)
    else:
        ok = authenticate(request, email=user.email, password=password) is not None
        if getattr(request, "axes_locked_out", False):
            state = lockout.lockout_state_for_request(request, {"email": user.email})
            record(action="auth.password_check", outcome="denied", target=user, actor=user,
                   extra={"field": field, "reason": "locked"})
            raise RetryLater("ACCOUNT_LOCKED", lockout.LOCKED_DETAIL, retry_after=max(1, state.retry_after))
    if not ok:
        record(action="auth.password_check", outcome="failure", target=user, actor=user, extra={"field": field})
        raise InvalidInput({field: ["The password is incorrect."]})


def password_change(*, user: User, current_password: str, new_password: str, keep_session_id=None,
                    request=None) -> None:
    """Change the password. Needs the current one; ends every other session, keeps this one,
    and kills reset links and pending email changes.

    Sends a notification email. Audits ``auth.password.changed`` (and a failed
    ``auth.password_check`` when the current password is wrong).
    """
    from sessions_mgmt.services import sessions_revoke_all

    _current_password_check(user=user, password=current_password, field="current_password", request=request)
    password_policy_check(password=new_password, user=user, field="new_password")
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        locked.set_password(new_password)
        locked.save(update_fields=["password"])
        user.password = locked.password
        account_tokens_revoke(user=locked, purposes=[Purpose.RESET_PASSWORD, Purpose.CHANGE_EMAIL])
        sessions_revoke_all(user=locked, reason="password_changed", keep_session_id=keep_session_id,
                            actor=locked)
        send_templated_email(to=locked.email, template="account_password_changed",
                             context=_mail_context(locked))
        record(action="auth.password.changed", target=locked, actor=locked)


# --- Profile --------------------------------------------------------------------------------
@transaction.atomic
def user_profile_update(*, user: User, first_name: str | None = None, last_name: str | None = None) -> User:
    """Change the names (nothing else). Idempotent; audits ``auth.profile.updated`` on change."""
    changed = {}
    for field, value in (("first_name", first_name), ("last_name", last_name)):
        if value is not None and getattr(user, field) != value:
            changed[field] = value
    if changed:
        for field, value in changed.items():
            setattr(user, field, value)
        user.save(update_fields=list(changed))
        record(action="auth.profile.updated", target=user, actor=user, extra={"fields": sorted(changed)})
    return user


def email_change_request(*, user: User, new_email: str, current_password: str, request=None) -> None:
    """Start an email change (ASVS 7.5.1): needs the current password.

    A link goes to the new address; the change happens only when it is used
    (``email_verify``). A taken address gets a notice instead and no link, and
    the caller sees no difference. Audits ``auth.email_change.requested``.
    """
    _current_password_check(user=user, password=current_password, field="current_password", request=request)
    new_email = normalize_email(new_email)
    if new_email == user.email:
        raise InvalidInput({"email": ["This is already your email address."]})
    with transaction.atomic():
        owner = User.objects.filter(email=new_email).first()
        if owner is not None:
            send_templated_email(to=owner.email, template="account_register_existing",
                                 context=_mail_context(owner, login_link=_url("/login"), reason="email_change"))
            record(action="auth.email_change.requested", outcome="denied", target=user,
                   extra={"reason": "address_in_use"})
            return
        token = account_token_issue(user=user, purpose=Purpose.CHANGE_EMAIL, new_email=new_email)
        _send_token_email(user=user, to=new_email, purpose=Purpose.CHANGE_EMAIL, token=token,
                          template="account_email_change", path="/verify-email")
        record(action="auth.email_change.requested", target=user, actor=user,
               extra={"new_email": new_email})


def user_deactivate(*, user: User, reason: str, actor: User | None = None) -> bool:
    """Deactivate an account: it can no longer log in; its sessions end and its provider
    connections are revoked; its audit trail stays.

    Row-locks the user; idempotent (returns False when already inactive).
    Audits ``auth.account.deactivated``.
    """
    from providers.services import connections_revoke_for_user
    from sessions_mgmt.services import sessions_revoke_all

    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if not locked.is_active:
            return False
        now = timezone.now()
        locked.is_active = False
        locked.deactivated_at = now
        locked.save(update_fields=["is_active", "deactivated_at"])
        user.is_active, user.deactivated_at = False, now
        account_tokens_revoke(user=locked, purposes=Purpose.values, now=now)
        sessions_revoke_all(user=locked, reason="account_deactivated", actor=actor or locked)
        connections_revoke_for_user(user=locked, reason="account_deactivated")
        send_templated_email(to=locked.email, template="account_deactivated", context=_mail_context(locked))
        record(action="auth.account.deactivated", target=locked, actor=actor or locked, extra={"reason": reason})
    return True


def user_deactivate_self(*, user: User, password: str, request=None) -> bool:
    """DELETE /me: the password first, then ``user_deactivate``."""
    _current_password_check(user=user, password=password, field="password", request=request)
    return user_deactivate(user=user, reason="self", actor=user)
