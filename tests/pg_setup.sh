#!/usr/bin/env bash
# Start the machine's PostgreSQL cluster (15, or $PGVER) and create the test role and database with PostGIS.
# Tests read the connection from HUIJIAO_TEST_PG (see README); make test exports it.
set -euo pipefail
PGVER=${PGVER:-15}  # the compat roots pass their own (tests/compat/run_roots.sh)
if ! pg_lsclusters -h 2>/dev/null | grep -q "^$PGVER main"; then
  pg_createcluster "$PGVER" main >/dev/null
fi
pg_ctlcluster "$PGVER" main start 2>/dev/null || true
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'huijiao') THEN
    CREATE ROLE huijiao LOGIN SUPERUSER PASSWORD 'huijiao';
  END IF;
END $$;
SQL
if ! runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname='huijiao_test'" | grep -q 1; then
  runuser -u postgres -- createdb -O huijiao huijiao_test
fi
runuser -u postgres -- psql -q -d huijiao_test -c "CREATE EXTENSION IF NOT EXISTS postgis"
echo "PostgreSQL ready: postgresql://huijiao:huijiao@127.0.0.1:5432/huijiao_test"
