"""Data the scenarios need, written into the bench database from this process.

Runs after ``django.setup()`` under the same production environment as the
servers, so hashes, signatures and encrypted fields match what they expect.
Seeding is idempotent: a second run reuses the users and audit rows already there.
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

PASSWORD = "Bench-Horse-9-Battery"
EMAIL = "bench-user-{:05d}@bench.invalid"
STAFF_EMAIL = "bench-staff@bench.invalid"


def users_ensure(*, count: int) -> list:
    """``count`` verified users whose password is PASSWORD (one Argon2 hash, shared)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    user_model = get_user_model()
    emails = [EMAIL.format(i) for i in range(count)]
    existing = set(user_model.objects.filter(email__in=emails).values_list("email", flat=True))
    missing = [e for e in emails if e not in existing]
    if missing:
        encoded = make_password(PASSWORD)
        now = timezone.now()
        user_model.objects.bulk_create(
            [user_model(email=e, password=encoded, email_verified_at=now, first_name="Bench")
             for e in missing],
            batch_size=1000,
        )
    by_email = {u.email: u for u in user_model.objects.filter(email__in=emails)}
    return [by_email[e] for e in emails]


def staff_ensure():
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    staff = user_model.objects.filter(email=STAFF_EMAIL).first()
    if staff is None:
        staff = user_model.objects.create_superuser(email=STAFF_EMAIL, password=PASSWORD)
    return staff


def _fake_request(index: int):
    from django.test import RequestFactory

    return RequestFactory().post(
        "/api/v1/auth/login",
        REMOTE_ADDR=f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}",
        HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36",
        HTTP_X_FORWARDED_PROTO="https",
    )


def sessions_start(*, users: list, count: int) -> list[tuple[str, str]]:
    """``count`` login sessions spread over ``users``: [(access, refresh), ...].

    Goes through ``sessions_mgmt.services.session_start``, the same service the
    login endpoint calls, so the rows are exactly what a real login writes.
    """
    from dashtam import context
    from sessions_mgmt import services as session_services

    pairs = []
    for i in range(count):
        request = _fake_request(i)
        token = context.set_context(context.context_for_request(request, context.new_request_id()))
        try:
            issued = session_services.session_start(user=users[i % len(users)], request=request)
        finally:
            context.reset(token)
        pairs.append((str(issued.access), str(issued.refresh)))
    return pairs


def admin_cookie(*, user) -> str:
    """A Cookie header for a logged-in admin session of ``user``."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    # The model backend of the settings (axes' backend authenticates no one by itself).
    store[BACKEND_SESSION_KEY] = next(b for b in settings.AUTHENTICATION_BACKENDS if not b.startswith("axes."))
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def audit_actions() -> list[str]:
    """Action codes from the audit catalogue (audit/catalogue.py), else a representative set."""
    try:
        from audit.catalogue import CATALOGUE

        if CATALOGUE:
            return sorted(CATALOGUE)
    except ImportError:
        pass
    return ["auth.login.succeeded", "auth.login.failed", "auth.logout", "session.created",
            "session.refreshed", "session.revoked", "auth.password.changed", "auth.register.requested"]


def audit_seed(*, rows: int, users: list, log, days: int = 365, seed: int = 8) -> dict:
    """Make the audit table hold at least ``rows`` rows, written with COPY (PostgreSQL).

    Rows spread over ``days`` days, over ``users`` as actors, over the catalogue's
    actions, each with its own request id. They are written already sealed into
    the hash chain (seq, prev_hash, chain_hash computed with ``audit.chain``, ids
    reserved from the table's sequence), as the sealing task would have left them
    in production, so no sealer has a million rows to catch up on during the other
    scenarios. Fields this module does not know get their model default, so a new
    column does not break the seed. Returns what the scenario searches for.
    """
    from datetime import UTC

    from django.db import connection, transaction
    from django.utils import timezone

    from audit import chain
    from audit.models import AuditEvent
    from audit.services import audit_chain_seal

    table = AuditEvent._meta.db_table
    qn = connection.ops.quote_name
    rng = random.Random(seed + AuditEvent.objects.count())
    actions = audit_actions()
    have = AuditEvent.objects.count()
    need = rows - have
    now = timezone.now()
    if need > 0:
        log(f"seeding {need:,} sealed audit rows with COPY ({have:,} there)")
        audit_chain_seal()  # what real requests wrote so far, so the head is current
        fields = list(AuditEvent._meta.concrete_fields)
        columns = ", ".join(qn(f.column) for f in fields)
        user_ids = [(str(u.pk), u.email) for u in users]
        span = days * 86400

        def value(f, generated):
            if f.name in generated:
                return generated[f.name]
            if f.has_default():
                return f.get_db_prep_save(f.get_default(), connection)
            return None if f.null else ""

        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            sequence = cursor.fetchone()[0]
            cursor.execute("SELECT nextval(%s)", [sequence])
            first_id = cursor.fetchone()[0]
            cursor.execute("SELECT setval(%s, %s)", [sequence, first_id + need - 1])
            head = (AuditEvent.objects.filter(seq__isnull=False).order_by("-seq")
                    .values_list("seq", "chain_hash").first()) or (0, "")
            seq, prev = head
            with cursor.cursor.copy(f"COPY {qn(table)} ({columns}) FROM STDIN") as copy:
                for i in range(need):
                    actor, email = user_ids[rng.randrange(len(user_ids))]
                    seq += 1
                    generated = {
                        "id": first_id + i,
                        "seq": seq,
                        "created_at": (now - timedelta(seconds=rng.random() * span)).astimezone(UTC),
                        "action": actions[rng.randrange(len(actions))],
                        "outcome": "success" if rng.random() < 0.9 else "failure",
                        "actor": actor,
                        "actor_email": email,
                        "target_type": "accounts.user",
                        "target_id": actor,
                        "target_repr": email,
                        "request_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        "session_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        "ip": f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                        "user_agent": "Mozilla/5.0 (bench)",
                        "fingerprint": f"{rng.getrandbits(256):064x}",
                        "method": "POST",
                        "path": "/api/v1/auth/login",
                        "route": "api/v1/auth/login",
                        "extra": {},
                        "prev_hash": prev,
                    }
                    generated["chain_hash"] = prev = chain.link_hash(prev, generated)
                    # The keyed row hash audit_verify re-checks on every sealed row.
                    generated["row_hash"] = chain.row_digest(generated)
                    generated["extra"] = "{}"
                    copy.write_row([value(f, generated) for f in fields])
                    if i and i % 250_000 == 0:
                        log(f"  {i:,} rows")
            cursor.execute(f"ANALYZE {qn(table)}")
    # What the scenario looks up: a real request id from the middle of the table,
    # that row's actor and action, and a 30-day window.
    from django.db.models import Max, Min

    bounds = AuditEvent.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
    middle = AuditEvent.objects.filter(pk__gte=((bounds["lo"] or 0) + (bounds["hi"] or 0)) // 2)
    row = middle.order_by("pk").values("request_id", "actor_id", "action").first()
    row = row or {"request_id": str(uuid.uuid4()), "actor_id": users[0].pk, "action": actions[0]}
    return {
        "rows": AuditEvent.objects.count(),
        "request_id": row["request_id"],
        "actor_id": str(row["actor_id"]),
        "action": row["action"],
        "since": (now - timedelta(days=30)).date().isoformat(),
        "until": (now + timedelta(days=1)).date().isoformat(),
    }


PROVIDER_ALIAS = "bench-{:05d}"


def provider_connections_reset(*, count: int, users: list, ledger, expires_at) -> list[str]:
    """``count`` active Schwab connections whose access tokens expire at ``expires_at``.

    The bench's earlier connections are deleted first. Tokens are sealed with the
    providers app's own sealing (row id as associated data), and every seeded
    refresh token is registered with the fake server's ledger under its
    connection id, so the ledger can tell a double refresh or a lost token.
    """
    from django.db import transaction
    from django.utils import timezone

    from dashtam import crypto
    from providers import services
    from providers.models import ConnectionStatus, ProviderConnection, ProviderToken

    now = timezone.now()
    with transaction.atomic():
        ProviderConnection.objects.filter(alias__startswith="bench-").delete()
        connections = ProviderConnection.objects.bulk_create(
            [ProviderConnection(user=users[i % len(users)], provider_key="schwab", alias=PROVIDER_ALIAS.format(i),
                                status=ConnectionStatus.ACTIVE, connected_at=now, min_token_version=1)
             for i in range(count)],
            batch_size=2000,
        )
        tokens = []
        for connection in connections:
            token = ProviderToken(id=uuid.uuid4(), connection=connection, expires_at=expires_at,
                                  refresh_expires_at=now + timedelta(days=7), scope="api",
                                  key_id=crypto.current_key_id(), token_version=1)
            refresh = f"rt.{connection.pk}.seed"
            services._seal(token, access=f"at.{connection.pk}.seed", refresh=refresh)
            ledger.register(str(connection.pk), refresh)
            tokens.append(token)
        ProviderToken.objects.bulk_create(tokens, batch_size=2000)
    return [str(c.pk) for c in connections]


def provider_refresh_tokens() -> dict[str, str]:
    """{connection id: refresh token in clear} of the bench's connections, read back."""
    from providers import services
    from providers.models import ProviderToken

    out = {}
    for token in ProviderToken.objects.filter(connection__alias__startswith="bench-").iterator(chunk_size=2000):
        out[str(token.connection_id)] = services._refresh_plaintext(token)
    return out
