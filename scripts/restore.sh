#!/usr/bin/env bash
# Restore a dump made by scripts/backup.sh into an EMPTY database.
#
#   scripts/restore.sh FILE             # into DATABASE_URL
#
# Refuses a database that already has tables (restore into a fresh one, check it, then
# point the application at it). Afterwards, see the runbook "Restoring from backup":
# revoke every token issued since the backup, then `manage.py audit_verify`.
set -euo pipefail

file=${1:?usage: scripts/restore.sh FILE (into DATABASE_URL)}
: "${DATABASE_URL:?DATABASE_URL must point at the (empty) PostgreSQL database to restore into}"
case "$DATABASE_URL" in postgres://*|postgresql://*) ;; *) echo "restore.sh: DATABASE_URL is not PostgreSQL" >&2; exit 2 ;; esac
[ -r "$file" ] || { echo "restore.sh: cannot read $file" >&2; exit 2; }

tables=$(psql "$DATABASE_URL" -Atc "select count(*) from pg_tables where schemaname = 'public'")
if [ "$tables" != "0" ]; then
  echo "restore.sh: the target database has $tables table(s); restore into an empty database" >&2
  exit 1
fi

# --exit-on-error and one transaction: all or nothing.
pg_restore --dbname="$DATABASE_URL" --no-owner --no-privileges --exit-on-error --single-transaction "$file"
echo "restored $file"
