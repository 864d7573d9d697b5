"""PostgreSQL: the audit table refuses UPDATE and DELETE.

Two writes stay possible, because the design needs them:
- sealing: a row with no chain hash yet may receive its seq, prev_hash and
  chain_hash (and nothing else may change in that UPDATE);
- a deleted user's events lose their foreign key (ON DELETE SET NULL); the
  email snapshot stays and the foreign key is not part of the chain hash.
DELETE is allowed only inside a transaction that ran
``SET LOCAL dashtam.audit_purge = 'on'``: the retention purge
(audit.services.audit_events_purge). SQLite has no triggers; there the
model-level guard (audit.models) is all there is.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION audit_auditevent_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    free_cols text[] := ARRAY['seq', 'prev_hash', 'chain_hash', 'actor_id'];
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF current_setting('dashtam.audit_purge', true) = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit_auditevent is append-only: DELETE of event % refused', OLD.id
            USING HINT = 'Only the retention purge deletes audit events.';
    END IF;
    IF (to_jsonb(NEW) - free_cols) IS DISTINCT FROM (to_jsonb(OLD) - free_cols) THEN
        RAISE EXCEPTION 'audit_auditevent is append-only: UPDATE of event % refused', OLD.id;
    END IF;
    IF NEW.actor_id IS DISTINCT FROM OLD.actor_id AND NEW.actor_id IS NOT NULL THEN
        RAISE EXCEPTION 'audit_auditevent is append-only: the actor of event % cannot change', OLD.id;
    END IF;
    IF OLD.chain_hash <> '' AND (NEW.seq IS DISTINCT FROM OLD.seq
            OR NEW.prev_hash IS DISTINCT FROM OLD.prev_hash
            OR NEW.chain_hash IS DISTINCT FROM OLD.chain_hash) THEN
        RAISE EXCEPTION 'audit_auditevent is append-only: event % is already sealed', OLD.id;
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS audit_auditevent_append_only ON audit_auditevent;
CREATE TRIGGER audit_auditevent_append_only
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_auditevent_append_only();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS audit_auditevent_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_auditevent_append_only();
"""


class PostgreSQLOnlyRunSQL(migrations.RunSQL):
    """RunSQL that does nothing on other databases (SQLite in the embedded default)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_chain_and_email_index"),
    ]

    operations = [
        PostgreSQLOnlyRunSQL(FORWARD, BACKWARD),
    ]
