"""Password hashers: Argon2id for every new password, bcrypt accepted from the earlier Dashtam."""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar

from django.contrib.auth.hashers import Argon2PasswordHasher, BCryptPasswordHasher

from audit import context

BCRYPT_MAX_BYTES = 72


class TimedHasherMixin:
    """Adds the time spent hashing to the request's ``hash_ms`` (its access log line).

    Operators see what a login's hash costs next to its ``duration_ms`` (to tune the
    Argon2 parameters to their machines), and the login benchmark reads the two
    from the same request.
    """

    def verify(self, password, encoded):
        with _timed():
            return super().verify(password, encoded)

    def encode(self, password, salt):
        # Also the dummy hash of a login for an unknown address (Django's ModelBackend).
        with _timed():
            return super().encode(password, salt)


_timing: ContextVar[bool] = ContextVar("dashtam_hash_timing", default=False)


@contextmanager
def _timed():
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


class Argon2idPasswordHasher(TimedHasherMixin, Argon2PasswordHasher):
    """Django's Argon2id hasher, same parameters and format, timed (see TimedHasherMixin)."""


class LegacyBCryptPasswordHasher(TimedHasherMixin, BCryptPasswordHasher):
    """Verifies the earlier Dashtam's plain bcrypt hashes (``bcrypt$$2b$12$...``).

    bcrypt only reads the first 72 bytes of a password, and bcrypt 5 refuses longer
    input with an exception. We never truncate what the user typed: a longer
    password simply does not match (the user can reset it). After one successful
    login Django re-hashes the password with Argon2id, the first hasher.
    """

    rounds = 12

    def verify(self, password, encoded):
        if len(password.encode()) > BCRYPT_MAX_BYTES:
            return False
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
