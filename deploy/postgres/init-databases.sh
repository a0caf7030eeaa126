#!/bin/sh
# First start of the PostgreSQL volume only (docker-entrypoint-initdb.d): one role and database
# for Reclaim, one role for Temporal with its two databases. Passwords come from .env.
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set reclaim_password="$POSTGRES_RECLAIM_PASSWORD" \
    --set temporal_password="$POSTGRES_TEMPORAL_PASSWORD" <<'SQL'
CREATE ROLE reclaim LOGIN PASSWORD :'reclaim_password';
CREATE DATABASE reclaim OWNER reclaim;
CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
SQL
