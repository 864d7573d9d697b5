"""The authentication backend: Django's ModelBackend, at the same hash cost on every path."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.db.models.signals import post_save
from django.dispatch import receiver

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


@receiver(post_save, dispatch_uid="accounts.note_legacy_hash")
def _note_legacy_hash(sender, instance, **kwargs):
    from django.contrib.auth import get_user_model

    if sender is get_user_model() and (instance.password or "").startswith("bcrypt$"):
        hashers.note_legacy_hash(instance.password)
