"""PostgreSQL: the purge flag is the one exception for UPDATE as well as DELETE.

``SET LOCAL dashtam.audit_purge = 'on'`` lifts the append-only rule for the rest
of that transaction only. The retention purge is the only product code that sets
it; anyone else who does leaves the edit to be caught by the row hashes and the
hash chain (``manage.py audit_verify``).
"""

from django.db import migrations

from audit.migrations._sql import PostgreSQLOnlyRunSQL

FORWARD = r"""
CREATE OR REPLACE FUNCTION audit_auditevent_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    free_cols text[] := ARRAY['seq', 'prev_hash', 'chain_hash', 'actor_id'];
BEGIN
    IF current_setting('dashtam.audit_purge', true) = 'on' THEN
        -- The maintenance exception, for this transaction only (SET LOCAL).
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
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

"""

BACKWARD = r"""
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

"""


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0004_row_hash"),
    ]

    operations = [
        PostgreSQLOnlyRunSQL(FORWARD, BACKWARD),
    ]
