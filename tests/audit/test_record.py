"""record(): the catalogue, the request context, and secrets kept out of extra."""

from __future__ import annotations

import pytest
from django.http import JsonResponse
from django.test import override_settings
from django.urls import path

from audit import catalogue
from audit.models import AuditEvent
from audit.services import record

pytestmark = pytest.mark.django_db


def test_an_unknown_action_code_is_refused(in_request):
    with pytest.raises(ValueError, match="auth.login.faild"):
        record(action="auth.login.faild", outcome="failure")
    assert not AuditEvent.objects.exists()


def test_an_unknown_outcome_is_refused(in_request):
    with pytest.raises(ValueError):
        record(action="auth.logout", outcome="maybe")


def test_every_code_in_the_catalogue_is_dotted_and_explained():
    required = {
        "auth.register.requested", "auth.register.duplicate", "auth.email.verified",
        "auth.email.verification_failed", "auth.login.succeeded", "auth.login.failed",
        "auth.login.unverified", "auth.lockout", "auth.lockout.cleared", "auth.logout",
        "auth.password.changed", "auth.password.reset_requested", "auth.password.reset",
        "auth.email_change.requested", "auth.email_change.confirmed", "auth.profile.updated",
        "auth.account.deactivated", "session.created", "session.refreshed", "session.revoked",
        "session.token_reuse_detected", "session.tokens_revoked", "provider.connection.created",
        "provider.connection.connected", "provider.connection.updated", "provider.connection.revoked",
        "provider.connection.deleted", "provider.oauth.failed", "provider.token.refreshed",
        "provider.token.refresh_failed", "provider.token.decrypt_failed",
        "provider.token.reauth_required", "provider.sync.completed", "provider.sync.failed",
        "provider.keys.rotated", "ratelimit.exceeded", "admin.action", "audit.purged", "audit.verified",
    }
    assert required <= set(catalogue.CATALOGUE)
    for code, meaning in catalogue.CATALOGUE.items():
        assert "." in code and code == code.lower() and len(code) <= 64, code
        assert meaning.strip(), code


def test_record_fills_in_the_request_context_and_scrubs_secrets(in_request, user):
    event = record(action="auth.password.changed", target=user, actor=user, extra={
        "password": "hunter2", "nested": {"refresh_token": "eyJhbGciOi.x.y", "field": "email"},
    })
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.request_id == "req-under-test"
    assert event.ip == "203.0.113.9"
    assert event.method == "POST" and event.path == "/api/v1/test" and event.route == "api/v1/test"
    assert len(event.fingerprint) == 64
    assert event.actor_id == user.pk and event.actor_email == user.email
    assert event.target_type == "accounts.user" and event.target_id == str(user.pk)
    assert event.extra["password"] == "[REDACTED]"
    assert event.extra["nested"] == {"refresh_token": "[REDACTED]", "field": "email"}
    assert "hunter2" not in str(AuditEvent.objects.values().get(pk=event.pk))


# --- Through a real request: a tiny view of our own ------------------------------------------
def _probe(request, n):
    record(action="admin.action", extra={"action": "probe"})
    return JsonResponse({"ok": True})


urlpatterns = [path("probe/<int:n>", _probe, name="probe")]


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "198.51.100.7", None, "198.51.100.7"),
        (0, "198.51.100.7", "1.2.3.4", "198.51.100.7"),  # no proxy: X-Forwarded-For is ignored
        (1, "10.0.0.2", "203.0.113.5", "203.0.113.5"),  # the proxy's view of the client
        (1, "10.0.0.2", "1.2.3.4, 203.0.113.5", "203.0.113.5"),  # a spoofed left-most hop
        (2, "10.0.0.2", "203.0.113.5", "10.0.0.2"),  # fewer hops than proxies: not through them
    ],
)
def test_a_request_writes_its_id_ip_and_route(client, settings, proxies, remote, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    headers = {"REMOTE_ADDR": remote, "HTTP_X_REQUEST_ID": "probe-req-1", "HTTP_USER_AGENT": "probe/1.0"}
    if forwarded:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    with override_settings(ROOT_URLCONF=__name__):
        response = client.get("/probe/7", **headers)
    assert response.status_code == 200
    # The client's X-Request-ID is the request id only through a trusted proxy.
    assert (response["X-Request-ID"] == "probe-req-1") == (proxies > 0)
    event = AuditEvent.objects.get()
    assert event.request_id == response["X-Request-ID"]
    assert event.client_request_id == (None if proxies else "probe-req-1")
    assert event.ip == expected
    assert event.route == "probe/<int:n>" and event.path == "/probe/7" and event.method == "GET"
    assert event.user_agent == "probe/1.0"


def test_record_stores_exactly_what_the_orm_would(in_request, user):
    """record() INSERTs with its own prepared statement; the row must equal an ORM-saved one."""
    from audit import chain

    written = record(action="auth.login.succeeded", target=user, actor=user,
                     extra={"session_id": "s-1", "nested": {"n": 1, "when": "2026-11-24"}, "password": "x"})
    twin = AuditEvent(**{f.attname: getattr(written, f.attname) for f in AuditEvent._meta.concrete_fields
                         if not f.primary_key and f.attname not in ("row_hash", "seq", "prev_hash", "chain_hash")})
    twin.save()

    columns = [f.attname for f in AuditEvent._meta.concrete_fields if not f.primary_key]
    stored, orm = (AuditEvent.objects.filter(pk=pk).values(*columns).get() for pk in (written.pk, twin.pk))
    assert stored == orm
    assert stored["extra"]["password"] != "x" and stored["actor_id"] == user.pk
    assert written._state.adding is False and written.pk < twin.pk
    # The hash taken at insert verifies against the row as read back.
    reread = AuditEvent.objects.get(pk=written.pk)
    assert chain.row_digest({name: getattr(reread, name) for name in chain.ROW_FIELDS}) == reread.row_hash


def test_batched_events_are_written_together_in_order_when_the_block_ends(in_request, user):
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from audit import chain
    from audit.services import batched

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        with batched():
            first = record(action="session.created", target=user, actor=user)
            second = record(action="auth.login.succeeded", target=user, actor=user, extra={"token": "s3cret"})
            assert not AuditEvent.objects.exists() and first.pk is None
        inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    assert first.pk < second.pk
    rows = list(AuditEvent.objects.order_by("id"))
    assert [r.action for r in rows] == ["session.created", "auth.login.succeeded"]
    assert rows[1].extra["token"] != "s3cret"
    for row in rows:
        assert chain.row_digest({name: getattr(row, name) for name in chain.ROW_FIELDS}) == row.row_hash


def test_a_batch_that_fails_writes_nothing(in_request, user):
    from audit.services import batched

    with pytest.raises(RuntimeError):
        with batched():
            record(action="session.created", target=user, actor=user)
            raise RuntimeError("the login failed after its first event")
    assert not AuditEvent.objects.exists()
    record(action="auth.logout", actor=user)  # outside any batch: written at once
    assert AuditEvent.objects.count() == 1
