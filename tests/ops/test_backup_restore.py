"""scripts/backup.sh and scripts/restore.sh, end to end on PostgreSQL.

Data is made through the API (login sessions, a Schwab connection through the real OAuth flow
against the local fake Schwab, the audit rows all of that writes), the audit chain is sealed,
then backup.sh dumps the test database and restore.sh loads it into a fresh database. A
separate process of the application, pointed at the restored database with the same keys,
must find the users and their sessions (a refresh token issued before the backup still
rotates), the connections with tokens that still decrypt, and an audit trail that
`manage.py audit_verify` passes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import UserFactory
from tests.providers.conftest import _closed_circuits, connect, schwab  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Correct-Horse-9-Battery"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

# Runs in the restored database: what an operator's first checks would read.
CHECK = r"""
import json, os, sys
import django
django.setup()
from accounts.models import User
from audit.models import AuditEvent
from providers.models import ProviderToken
from providers.services import token_access_plaintext
from sessions_mgmt.models import Session
from sessions_mgmt.services import session_refresh

expected = json.loads(sys.stdin.read())
out = {
    "users": sorted(User.objects.values_list("email", flat=True)),
    "active_sessions": Session.objects.filter(revoked_at__isnull=True).count(),
    "tokens": sorted(token_access_plaintext(token=t) for t in ProviderToken.objects.all()),
    "audit_events": AuditEvent.objects.count(),
    "refreshed": bool(session_refresh(refresh=expected["refresh"]).access),
}
print(json.dumps(out))
"""


def _url(name: str) -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name}"


def _app_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL")}
    env.update(DATABASE_URL=database_url, DJANGO_ENV="test", DJANGO_SETTINGS_MODULE="dashtam.settings")
    return env


@pytest.fixture
def restore_db():
    if connection.vendor != "postgresql":
        pytest.skip("backup and restore use pg_dump/pg_restore: PostgreSQL only (set DATABASE_URL=postgres://...)")
    for tool in ("pg_dump", "pg_restore", "psql"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    name = f"{connection.settings_dict['NAME']}_restore"
    server = _url("postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _url(name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _login(email: str) -> dict:
    response = APIClient(REMOTE_ADDR="203.0.113.7").post(
        "/api/v1/auth/login", {"email": email, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.slow
def test_backup_then_restore_into_a_fresh_database_keeps_users_sessions_tokens_and_the_audit_chain(
        restore_db, schwab, tmp_path):  # noqa: F811 - the fixture imported above
    from audit.services import audit_chain_seal

    users = [UserFactory(email=f"restore{i}@example.com") for i in range(2)]
    logins = [_login(user.email) for user in users]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {logins[0]['access']}")
    connect(client, schwab)
    from providers.models import ProviderToken
    from providers.services import token_access_plaintext

    tokens_before = sorted(token_access_plaintext(token=t) for t in ProviderToken.objects.all())
    assert tokens_before
    audit_chain_seal()
    from audit.models import AuditEvent

    events_before = AuditEvent.objects.count()
    assert AuditEvent.objects.filter(seq__isnull=False).count() == events_before > 0

    dump = tmp_path / "dashtam.dump"
    source_env = {**os.environ, "DATABASE_URL": _url(connection.settings_dict["NAME"])}
    subprocess.run(["bash", str(ROOT / "scripts/backup.sh"), str(dump)], env=source_env, check=True,
                   cwd=ROOT, timeout=120)
    assert dump.stat().st_size > 0
    target_env = {**os.environ, "DATABASE_URL": restore_db}
    subprocess.run(["bash", str(ROOT / "scripts/restore.sh"), str(dump)], env=target_env, check=True,
                   cwd=ROOT, timeout=120)
    # A second restore into the now non-empty database is refused.
    again = subprocess.run(["bash", str(ROOT / "scripts/restore.sh"), str(dump)], env=target_env,
                           cwd=ROOT, timeout=120, capture_output=True, text=True)
    assert again.returncode == 1 and "restore into an empty database" in again.stderr

    found = subprocess.run([sys.executable, "-c", CHECK], env=_app_env(restore_db), cwd=ROOT, timeout=120,
                           input=json.dumps({"refresh": logins[1]["refresh"]}),
                           capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    restored = json.loads(found.stdout.strip().splitlines()[-1])
    assert restored["users"] == sorted(user.email for user in users)
    assert restored["active_sessions"] == 2
    assert restored["tokens"] == tokens_before
    assert restored["audit_events"] == events_before
    assert restored["refreshed"] is True

    verify = subprocess.run([sys.executable, "manage.py", "audit_verify", "--no-record"], env=_app_env(restore_db),
                            cwd=ROOT, timeout=120, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # Every event of the backup, plus the restored process's own session.refreshed.
    assert f"OK: {events_before + 1} event(s) checked" in verify.stdout
