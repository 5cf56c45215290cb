#!/bin/sh
# The standby: on first start, copy the primary with pg_basebackup (-R: standby.signal and primary_conninfo
# written for us), then run as a hot standby that streams WAL from it.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_isready -h db -p 5432 -q; do sleep 1; done
    rm -rf "${PGDATA:?}"/*
    PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h db -p 5432 -U replicator -D "$PGDATA" -X stream -R -P
    chmod 0700 "$PGDATA"
fi
exec postgres -c hot_standby=on -c max_connections=200
