"""Password hashers: Argon2id for every new password, bcrypt accepted from the earlier Dashtam.

A login must not tell an attacker anything through its duration: whether the address
exists, whether the account still carries a legacy bcrypt hash, whether the password
was too long for bcrypt. ``equal_cost`` (wrapped around every ``authenticate`` by
``accounts.backends.EqualCostModelBackend``) makes every path cost the same hashes:
one Argon2id at the configured parameters and, while any account still carries a
legacy bcrypt hash, one bcrypt at that hash's cost. Each path computes what it needs
and the rest is topped up with a dummy computation of the missing kind.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar

from django.contrib.auth.hashers import Argon2PasswordHasher, BCryptPasswordHasher

from dashtam import context

BCRYPT_MAX_BYTES = 72
ARGON2 = "argon2"
BCRYPT = "bcrypt"


class TimedHasherMixin:
    """Adds the time spent hashing to the request's ``hash_ms`` (its access log line).

    Operators see what a login's hash costs next to its ``duration_ms`` (to tune the
    Argon2 parameters to their machines), and the login benchmark reads the two
    from the same request. Each full-cost computation is also counted by kind
    (``hash_count_argon2``, ``hash_count_bcrypt`` on the same line).
    """

    def verify(self, password, encoded):
        with _timed(self.algorithm):
            return super().verify(password, encoded)

    def encode(self, password, salt):
        # Also the dummy hash of a login for an unknown address (Django's ModelBackend).
        with _timed(self.algorithm):
            return super().encode(password, salt)


_timing: ContextVar[bool] = ContextVar("dashtam_hash_timing", default=False)
# The kinds of full-cost hash computed inside the current ``equal_cost`` block.
_computed: ContextVar[dict | None] = ContextVar("dashtam_hash_computed", default=None)


@contextmanager
def _timed(kind: str):
    if _timing.get():  # bcrypt's verify() calls encode(): count the outer call only
        yield
        return
    token = _timing.set(True)
    started = time.perf_counter()
    try:
        yield
    finally:
        _timing.reset(token)
        context.add_duration("hash_ms", (time.perf_counter() - started) * 1000)
        context.add_count(f"hash_count_{kind}")
        computed = _computed.get()
        if computed is not None:
            computed[kind] = computed.get(kind, 0) + 1


class Argon2idPasswordHasher(TimedHasherMixin, Argon2PasswordHasher):
    """Django's Argon2id hasher, same parameters and format, timed (see TimedHasherMixin)."""


class LegacyBCryptPasswordHasher(TimedHasherMixin, BCryptPasswordHasher):
    """Verifies the earlier Dashtam's plain bcrypt hashes (``bcrypt$$2b$12$...``).

    bcrypt only reads the first 72 bytes of a password, and bcrypt 5 refuses longer
    input with an exception. We never truncate what the user typed: a longer
    password simply does not match (the user can reset it). It still costs one
    bcrypt at the stored hash's cost, so the answer comes no sooner than for any
    other wrong password. After one successful login Django re-hashes the password
    with Argon2id, the first hasher.
    """

    rounds = 12

    def verify(self, password, encoded):
        if len(password.encode()) > BCRYPT_MAX_BYTES:
            _bcrypt_burn(encoded)
            return False
        note_legacy_hash(encoded)
        return super().verify(password, encoded)

    def encode(self, password, salt):
        if len(password.encode()) > BCRYPT_MAX_BYTES:
            raise ValueError("bcrypt cannot hash passwords longer than 72 bytes")
        return super().encode(password, salt)

    def harden_runtime(self, password, encoded):
        if len(password.encode()) > BCRYPT_MAX_BYTES:
            return
        super().harden_runtime(password, encoded)


class FastArgon2PasswordHasher(Argon2idPasswordHasher):
    """Argon2id with small costs, used only when DJANGO_ENV=test to keep the suite fast.

    Same algorithm name and format as production, so a hash made in tests reads
    like a production hash; only the cost parameters differ.
    """

    time_cost = 1
    memory_cost = 1024
    parallelism = 1


# --- Equal cost for every login path -------------------------------------------------
_DUMMY_PASSWORD = "dashtam-dummy-password"  # noqa: S105 - hashed only to spend time


def _bcrypt_salt_of(encoded: str) -> bytes | None:
    """The ``$2b$12$<22 chars>`` salt of a stored ``bcrypt$$2b$12$...`` hash, or None."""
    _, _, data = encoded.partition("$")
    parts = data.split("$")
    if len(parts) != 4 or not parts[2].isdigit() or len(parts[3]) < 22:
        return None
    return f"${parts[1]}${parts[2]}${parts[3][:22]}".encode()


def _bcrypt_rounds_of(encoded: str) -> int | None:
    salt = _bcrypt_salt_of(encoded)
    return int(salt.split(b"$")[2]) if salt else None


def _bcrypt_burn(encoded: str | None = None, rounds: int | None = None) -> None:
    """One bcrypt computation at the cost of ``encoded`` (or ``rounds``), counted and timed."""
    import bcrypt

    salt = _bcrypt_salt_of(encoded) if encoded else None
    if salt is None:
        salt = bcrypt.gensalt(rounds or LegacyBCryptPasswordHasher.rounds)
    with _timed(BCRYPT):
        bcrypt.hashpw(_DUMMY_PASSWORD.encode(), salt)


class _LegacyState:
    """Whether accounts with a legacy bcrypt hash exist, and their cost (rounds).

    Read from the database at most every PASSWORD_LEGACY_CHECK_SECONDS per process;
    a legacy hash that this process saves or verifies is noted at once.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.rounds: int | None = None
        self.checked_at: float | None = None

    def reset(self) -> None:
        with self.lock:
            self.rounds = None
            self.checked_at = None


_legacy = _LegacyState()


def note_legacy_hash(encoded: str) -> None:
    """Remember that a legacy bcrypt hash exists (a user row was saved or verified with one)."""
    rounds = _bcrypt_rounds_of(encoded)
    if rounds is not None:
        with _legacy.lock:
            _legacy.rounds = max(rounds, _legacy.rounds or 0)


def reset_process_state() -> None:
    """Forget what this process knows about legacy hashes (tests; the next login reads the database)."""
    _legacy.reset()


def legacy_bcrypt_rounds() -> int | None:
    """The cost of the legacy bcrypt hashes still stored, or None when none are left."""
    from django.conf import settings

    now = time.monotonic()
    with _legacy.lock:
        fresh = _legacy.checked_at is not None and now - _legacy.checked_at < settings.PASSWORD_LEGACY_CHECK_SECONDS
        if fresh:
            return _legacy.rounds
    from django.contrib.auth import get_user_model

    # The highest cost present: sorting the stored strings puts "$2b$12$" after "$2b$04$".
    found = (get_user_model().objects.filter(password__startswith="bcrypt$")
             .order_by("-password").values_list("password", flat=True).first())
    rounds = _bcrypt_rounds_of(found) if found else None
    with _legacy.lock:
        # A hash noted meanwhile is not forgotten; with none stored, nothing is left to pad.
        _legacy.rounds = rounds if rounds is not None else None
        _legacy.checked_at = now
        return _legacy.rounds


@contextmanager
def equal_cost(password: str | None = None):
    """Make the block cost one Argon2id plus (while legacy hashes exist) one bcrypt.

    Whatever the block computed itself (a verify, Django's dummy hash for an unknown
    address, the upgrade of a legacy hash after a correct password) counts; each kind
    it did not compute is computed once on a dummy password at the end. Nesting
    counts once, in the outermost block.
    """
    if _computed.get() is not None:
        yield
        return
    computed: dict = {}
    token = _computed.set(computed)
    try:
        yield
    finally:
        try:
            if not computed.get(ARGON2):
                from django.contrib.auth.hashers import get_hasher

                hasher = get_hasher("default")
                hasher.encode(_DUMMY_PASSWORD, hasher.salt())
            if not computed.get(BCRYPT):
                rounds = legacy_bcrypt_rounds()
                if rounds:
                    _bcrypt_burn(rounds=rounds)
        finally:
            _computed.reset(token)
