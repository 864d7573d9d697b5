"""factory_boy factories shared by the test packages.

They write rows directly, for tests whose subject is not how those rows came to be: a test
of the OAuth flow goes through it over HTTP (tests/providers/test_oauth_flow.py); a test of a
token refresh starts from a ``ProviderTokenFactory`` row. Audit events are the exception: they
are only ever written by ``audit.services.record``, so ``AuditEventFactory`` calls it.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

import factory
from django.conf import settings
from django.utils import timezone


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "accounts.User"
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    first_name = "Ada"
    last_name = "Lovelace"
    email_verified_at = factory.LazyFunction(timezone.now)
    is_active = True

    @factory.post_generation
    def password(obj, create, extracted, **kwargs):  # factory_boy API
        obj.set_password(extracted or "Correct-Horse-9-Battery")
        if create:
            obj.save(update_fields=["password"])


class SessionFactory(factory.django.DjangoModelFactory):
    """A live login session row, as ``session_start`` leaves it, without its tokens (a test that
    needs a bearer token signs in with ``sessions_mgmt.services.session_start``)."""

    class Meta:
        model = "sessions_mgmt.Session"

    user = factory.SubFactory(UserFactory)
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(seconds=settings.SESSION_MAX_AGE))
    refresh_jti = factory.LazyFunction(lambda: uuid.uuid4().hex)
    ip = "203.0.113.9"
    user_agent = "pytest"
    device = "Other"
    browser = "Other"
    os = "Other"
    auth_methods = factory.LazyFunction(lambda: ["password"])

    class Params:
        revoked = factory.Trait(
            revoked_at=factory.LazyFunction(timezone.now),
            revoke_reason="logout",
        )


class ProviderConnectionFactory(factory.django.DjangoModelFactory):
    """An active connection, as the end of the OAuth flow leaves it (``sync_queued=True``: with
    the first sync queued, as ``complete`` leaves it). Give it a ``ProviderTokenFactory`` token."""

    class Meta:
        model = "providers.ProviderConnection"

    user = factory.SubFactory(UserFactory)
    provider_key = "schwab"
    alias = factory.Sequence(lambda n: f"Brokerage {n}")
    status = "active"
    connected_at = factory.LazyFunction(timezone.now)
    last_refreshed_at = factory.SelfAttribute("connected_at")

    class Params:
        sync_queued = factory.Trait(
            sync_job_id=factory.LazyFunction(uuid.uuid4),
            sync_requested_at=factory.SelfAttribute("connected_at"),
        )


class ProviderTokenFactory(factory.django.DjangoModelFactory):
    """A provider token sealed as the services seal it: ``access`` and ``refresh`` are the
    plaintexts (random unless given; ``refresh=""`` for none), encrypted under the newest key."""

    class Meta:
        model = "providers.ProviderToken"

    connection = factory.SubFactory(ProviderConnectionFactory)
    access = factory.LazyFunction(lambda: "AT-" + secrets.token_urlsafe(24))
    refresh = factory.LazyFunction(lambda: "RT-" + secrets.token_urlsafe(24))
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=30))
    refresh_expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))
    scope = "api"
    token_version = 1

    @classmethod
    def _create(cls, model_class, *args, access: str = "", refresh: str = "", **kwargs):
        from providers import services

        token = model_class(*args, **kwargs)
        services._seal(token, access=access, refresh=refresh)
        token.save()
        return token

    @classmethod
    def _build(cls, model_class, *args, access: str = "", refresh: str = "", **kwargs):
        return model_class(*args, **kwargs)


class AuditEventFactory(factory.Factory):
    """One audit event, written the only way events are written: ``audit.services.record``
    (hashed and chained like any other). Pass ``target=`` or the ``target_*`` fields."""

    class Meta:
        model = dict  # record() builds the row; see _create

    action = "auth.login.succeeded"
    outcome = "success"
    actor = None
    extra = factory.LazyFunction(dict)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from audit.services import record

        return record(**kwargs)

