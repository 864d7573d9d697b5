"""Print the PostgreSQL grants that keep the purge escape hatch away from the application's role."""

from __future__ import annotations

import re

from django.core.management.base import BaseCommand, CommandError

from audit.models import AuditEvent

ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# The columns the application writes on an existing row: sealing, and a deleted user's foreign key.
SEAL_COLUMNS = ("seq", "prev_hash", "chain_hash", "actor")


def role_statements(*, app_role: str, purge_role: str, schema: str = "public") -> list[str]:
    """GRANT statements, run by the owner of the tables (the role that runs migrations).

    The application's role gets every table, except that on the audit table it
    may not DELETE (nor TRUNCATE) and may UPDATE only the sealing columns and the
    actor's foreign key. The purge role gets what the purge needs on the audit
    table: read, insert its ``audit.purged`` event, seal, and DELETE. The
    ``dashtam.audit_purge`` flag then opens nothing to the application's role.
    """
    for name in (app_role, purge_role, schema):
        if not ROLE_RE.match(name):
            raise ValueError(f"{name!r} is not a plain lower-case PostgreSQL identifier")
    if app_role == purge_role:
        raise ValueError("the application's role and the purge role must differ")
    table = AuditEvent._meta.db_table
    columns = ", ".join(AuditEvent._meta.get_field(name).column for name in SEAL_COLUMNS)
    return [
        f"GRANT USAGE ON SCHEMA {schema} TO {app_role}, {purge_role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app_role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {app_role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app_role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {app_role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {app_role}",
        f"GRANT UPDATE ({columns}) ON {table} TO {app_role}",
        f"GRANT SELECT, INSERT, DELETE ON {table} TO {purge_role}",
        f"GRANT UPDATE ({columns}) ON {table} TO {purge_role}",
    ]


class Command(BaseCommand):
    help = ("Print the PostgreSQL grants for running the audit retention purge under its own database "
            "role (docs/audit.md). Run them as the owner of the tables.")

    def add_arguments(self, parser):
        parser.add_argument("--app-role", required=True, help="The role the web app, worker and beat use.")
        parser.add_argument("--purge-role", required=True, help="The role only `manage.py audit_purge` uses.")
        parser.add_argument("--schema", default="public")

    def handle(self, *args, app_role: str, purge_role: str, schema: str, **options):
        try:
            statements = role_statements(app_role=app_role, purge_role=purge_role, schema=schema)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("\n".join(f"{statement};" for statement in statements))
