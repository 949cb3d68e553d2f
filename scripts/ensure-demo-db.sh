#!/usr/bin/env bash
# Make sure the demo database for `make run` exists.
#
#   scripts/ensure-demo-db.sh DATABASE_URL
#
# DATABASE_URL is a server URL as printed by scripts/ensure-db.sh (with or
# without its "DATABASE_URL=" prefix). If database `chihaya` does not exist on
# that server, it is created and loaded with database/schema.sql and
# fixtures/fixtures.sql. An existing `chihaya` database is left untouched
# (drop it to get fresh fixtures).
#
# stdout: exactly one line, the DB_DSN value for the tracker, in the form
#   USER[:PASS]@tcp(HOST:PORT)/chihaya  or  USER[:PASS]@unix(SOCKET)/chihaya
# stderr: everything else, prefixed with "ensure-demo-db: ". Exit 1 on failure.
set -euo pipefail

PROG=ensure-demo-db
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=db-lib.sh
. "$REPO/scripts/db-lib.sh"

DEMO_DB=chihaya

case $# in
  1) ;;
  *) die "usage: scripts/ensure-demo-db.sh DATABASE_URL" ;;
esac
case $1 in
  -h | --help)
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac

parse_db_url "${1#DATABASE_URL=}" || exit 1
find_client || die "no mariadb (or mysql) client found"

exists=$(db_client -N -B -e \
  "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '$DEMO_DB'") ||
  die "cannot query $(db_target)"

if [[ $exists == 0 ]]; then
  say "creating database $DEMO_DB on $(db_target) from database/schema.sql and fixtures/fixtures.sql"
  db_client -e "CREATE DATABASE \`$DEMO_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci" ||
    die "cannot create database $DEMO_DB"
  if ! {
    echo "SET SESSION sql_mode = 'STRICT_TRANS_TABLES';"
    cat "$REPO/database/schema.sql" "$REPO/fixtures/fixtures.sql"
  } | db_client "$DEMO_DB"; then
    # Leave no half-loaded database behind: the next run starts over.
    db_client -e "DROP DATABASE IF EXISTS \`$DEMO_DB\`" || true
    die "loading the schema or the fixtures failed, database $DEMO_DB dropped"
  fi
else
  say "database $DEMO_DB exists on $(db_target), using it as it is (drop it to reload the fixtures)"
fi

auth=$DB_USER
((DB_HAS_PASS)) && auth+=":$DB_PASS"
if [[ -n $DB_SOCKET ]]; then
  printf '%s@unix(%s)/%s\n' "$auth" "$DB_SOCKET" "$DEMO_DB"
elif [[ $DB_HOST == *:* ]]; then
  printf '%s@tcp([%s]:%s)/%s\n' "$auth" "$DB_HOST" "$DB_PORT" "$DEMO_DB"
else
  printf '%s@tcp(%s:%s)/%s\n' "$auth" "$DB_HOST" "$DB_PORT" "$DEMO_DB"
fi
