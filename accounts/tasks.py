"""Periodic accounts work."""

from __future__ import annotations

from celery import shared_task

from accounts import services


@shared_task(acks_late=True)
def cleanup_account_tokens() -> int:
    """Delete email tokens and second-factor login steps that can no longer be used, and login
    attempts that no longer count toward a lockout. Idempotent and safe to overlap."""
    from accounts.lockout import attempts_cleanup
    from accounts.mfa.services import mfa_challenges_cleanup

    return services.account_tokens_cleanup() + attempts_cleanup() + mfa_challenges_cleanup()


# Resend and reset requests answer in constant time whether or not the address has an
# account: the view only enqueues one of these, and the lookup happens here.
@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=5, max_retries=5)
def verification_resend_for(email: str) -> bool:
    """Send a new verification link when ``email`` is an unverified active account."""
    return services.verification_resend(email=email)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=5, max_retries=5)
def password_reset_request_for(email: str) -> bool:
    """Email a reset link when ``email`` is an active account."""
    return services.password_reset_request(email=email)
