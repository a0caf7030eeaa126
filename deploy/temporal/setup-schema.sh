#!/bin/sh
# Temporal's schemas on PostgreSQL (persistence and visibility), run by the temporal-schema
# service before the server starts. Idempotent: on an existing database it applies only the
# versions it lacks, so a newer admin-tools image upgrades the schema in place.
set -eu

SCHEMA=/etc/temporal/schema/postgresql/v12
for db in temporal:temporal visibility:temporal_visibility; do
    kind=${db%%:*}
    name=${db#*:}
    sql() {
        temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" \
            -u "$POSTGRES_USER" --db "$name" "$@"
    }
    sql setup-schema -v 0.0
    sql update-schema -d "$SCHEMA/$kind/versioned"
done
echo "Temporal schemas are up to date"
