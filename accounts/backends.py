"""The authentication backend: Django's ModelBackend, at the same hash cost on every path."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.db.models.signals import post_save

from accounts import hashers


class EqualCostModelBackend(ModelBackend):
    """Every authenticate() costs one Argon2id and, while legacy hashes remain, one bcrypt.

    Known or unknown address, right or wrong password, Argon2id or legacy bcrypt
    account, a password too long for bcrypt: the same hashes are computed (see
    ``accounts.hashers.equal_cost``), so the API login and the admin login take the
    same time whatever the answer.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        with hashers.equal_cost():
            return super().authenticate(request, username=username, password=password, **kwargs)


def _note_legacy_hash(sender, instance, **kwargs):
    if (instance.password or "").startswith("bcrypt$"):
        hashers.note_legacy_hash(instance.password)


# Only the user model: a listener on every model would, for one, send the audit trail's
# INSERTs through the ORM's slower save() (``audit.services.INSERT.usable``; no hand-written
# statement writes users without save(), so this listener switches none of them off).
post_save.connect(_note_legacy_hash, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.note_legacy_hash")
