#!/usr/bin/env bash
# Back up Dashtam's PostgreSQL database to one file (pg_dump's custom format, compressed).
#
#   scripts/backup.sh [FILE]            # FILE defaults to dashtam-YYYYmmddTHHMMSSZ.dump
#
# Reads DATABASE_URL (postgres://...). The dump holds every table: users, sessions, provider
# connections (tokens encrypted), the audit trail with its hash chain. It does NOT hold the
# keys that open it: keep FIELD_ENCRYPTION_KEYS, DJANGO_SECRET_KEY / AUDIT_HMAC_KEY (and
# their fallbacks) and JWT_SIGNING_KEY in your secret store, separately from the dumps.
# Without the same encryption keys the restored provider tokens do not decrypt; without the
# same HMAC key the audit trail does not verify. Redis is not backed up: nothing in it is
# the source of truth.
set -euo pipefail

: "${DATABASE_URL:?DATABASE_URL must point at the PostgreSQL database to back up}"
case "$DATABASE_URL" in postgres://*|postgresql://*) ;; *) echo "backup.sh: DATABASE_URL is not PostgreSQL" >&2; exit 2 ;; esac

file=${1:-dashtam-$(date -u +%Y%m%dT%H%M%SZ).dump}
tmp="$file.partial"
trap 'rm -f "$tmp"' EXIT

# --format=custom: compressed, restorable table by table, in parallel (pg_restore -j).
# --no-owner/--no-privileges: restorable under another role; grants are re-applied by the
# deployment (see `manage.py audit_role_sql`).
pg_dump --dbname="$DATABASE_URL" --format=custom --no-owner --no-privileges --file="$tmp"
mv "$tmp" "$file"
trap - EXIT
echo "backup written: $file ($(du -h "$file" | cut -f1))"
