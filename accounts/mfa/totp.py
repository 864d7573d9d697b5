"""TOTP and recovery-code primitives (pyotp for RFC 6238, segno for the QR code). No database."""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import secrets
import time

import pyotp
import segno

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1  # accept the previous and the next time step too
TOTP_CODE = re.compile(r"^[0-9]{6}$")  # ASCII digits only (\d would take any script's)

# Recovery codes: 16 characters of a 32-letter alphabet without look-alikes (no l, o, 0, 1),
# 80 random bits, shown in four groups of four: "k7xq-2m9p-wd4h-tn3e".
RECOVERY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
RECOVERY_LENGTH = 16


def new_secret() -> str:
    """A 160-bit seed, base32 (RFC 4226 recommends 160 bits)."""
    return pyotp.random_base32(32)


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // STEP_SECONDS)


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def matching_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step (within +-DRIFT_STEPS of now) whose code is ``code``, or None.

    Every candidate is compared in constant time; the newest matching step wins.
    """
    if not isinstance(code, str) or not TOTP_CODE.fullmatch(code):
        return None
    step = current_step(now)
    found = None
    for candidate in range(step - DRIFT_STEPS, step + DRIFT_STEPS + 1):
        if hmac.compare_digest(code_at(secret, candidate), code):
            found = candidate
    return found


def otpauth_uri(secret: str, *, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The otpauth URI as an inline SVG document (no XML declaration, no script)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, border=4, xmldecl=False,
                                      svgns=True, nl=False, title="Scan with your authenticator app")
    return buffer.getvalue().decode()


# --- recovery codes --------------------------------------------------------------------
def new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, RECOVERY_LENGTH, 4))


def normalize_recovery_code(code: str) -> str | None:
    """Lower-case, without dashes or spaces; None when it cannot be a recovery code."""
    if not isinstance(code, str) or len(code) > 64:
        return None
    value = re.sub(r"[\s\-]", "", code).lower()
    if len(value) != RECOVERY_LENGTH or any(c not in RECOVERY_ALPHABET for c in value):
        return None
    return value


def recovery_code_hash(*, user_id, normalized: str) -> str:
    """SHA-256 of the user id and the code: a code is only ever valid for its own account."""
    return hashlib.sha256(f"dashtam-recovery:{user_id}:{normalized}".encode()).hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
