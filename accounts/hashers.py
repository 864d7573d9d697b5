"""Password hashers: Argon2id for every new password, bcrypt accepted from the earlier Dashtam."""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher, BCryptPasswordHasher

BCRYPT_MAX_BYTES = 72


class LegacyBCryptPasswordHasher(BCryptPasswordHasher):
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


class FastArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2id with small costs, used only when DJANGO_ENV=test to keep the suite fast.

    Same algorithm name and format as production, so a hash made in tests reads
    like a production hash; only the cost parameters differ.
    """

    time_cost = 1
    memory_cost = 1024
    parallelism = 1
