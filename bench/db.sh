#!/usr/bin/env bash
# The `make bench-db` harness: what each accounting statement costs MariaDB per
# row, by statement shape (prepared / text), rows per statement and commit mode
# (autocommit / one transaction per flush). See bench/README.md ("Statement
# shape and size") and examples/bench_db.rs.
#
#   bench/db.sh                         all four tables (a few minutes)
#   BENCH_DB_TABLES=history bench/db.sh one table
#   BENCH_KEEP=1 bench/db.sh            keep the database afterwards
#
# Builds examples/bench_db (release), finds MariaDB (scripts/ensure-db.sh: it
# must run on this host, its CPU is what is measured), recreates the database
# $BENCH_DB (default chihaya_benchdb) from database/schema.sql, runs the
# benchmark and drops the database at exit (also on error or Ctrl-C) unless
# BENCH_KEEP=1. Output goes to bench/runs/<timestamp>-db/ (summary.txt, results.md).
set -euo pipefail

PROG=bench-db
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/bench
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH/lib.sh"

BENCH_DB=${BENCH_DB:-chihaya_benchdb}
BENCH_SEED=${BENCH_SEED:-1}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_DB_FLUSHES=${BENCH_DB_FLUSHES:-13}
BENCH_DB_TABLES=${BENCH_DB_TABLES:-users,torrents,history,ips}
BENCH_DB_MAX_SECONDS=${BENCH_DB_MAX_SECONDS:-600}
CARGO=${CARGO:-cargo}

DB_CREATED=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((DB_CREATED)) && [[ $BENCH_KEEP != 1 ]]; then
    db_client -e "DROP DATABASE IF EXISTS \`$BENCH_DB\`" || say "could not drop database $BENCH_DB"
  elif ((DB_CREATED)); then
    say "BENCH_KEEP=1: database $BENCH_DB kept"
  fi
  ((rc == 0)) || say "FAILED (exit $rc); output in $RUN_DIR"
  exit "$rc"
}

main() {
  [[ $BENCH_DB =~ ^[A-Za-z0-9_]+$ ]] || die "BENCH_DB must be a plain name"
  [[ $BENCH_SEED =~ ^[0-9]+$ ]] || die "BENCH_SEED must be a non-negative integer"
  [[ $BENCH_DB_FLUSHES =~ ^[1-9][0-9]*$ ]] || die "BENCH_DB_FLUSHES must be a positive integer"
  [[ $BENCH_DB_MAX_SECONDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_DB_MAX_SECONDS must be a positive integer"

  start_run db cleanup

  (cd "$REPO" && "$CARGO" build --release --example bench_db)
  local bin=${CARGO_TARGET_DIR:-target}
  [[ $bin == /* ]] || bin=$REPO/$bin
  bin=$bin/release/examples/bench_db
  [[ -x $bin ]] || die "built example not found: $bin"

  ensure_db
  [[ -n $MARIADB_PID ]] || die "MariaDB must run on this host: its CPU is what bench-db measures"
  if pgrep -f 'wrk |bench/run\.sh|bench/hostile\.sh' >/dev/null; then
    say "WARNING: another benchmark is running; the figures will carry its load"
  fi

  db_client -e "DROP DATABASE IF EXISTS \`$BENCH_DB\`;
    CREATE DATABASE \`$BENCH_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci" ||
    die "cannot recreate database $BENCH_DB"
  DB_CREATED=1
  db_client "$BENCH_DB" <"$REPO/database/schema.sql" || die "loading database/schema.sql failed"

  "$bin" --dsn "$DSN" --mariadb-pid "$MARIADB_PID" --seed "$BENCH_SEED" \
    --flushes "$BENCH_DB_FLUSHES" --tables "$BENCH_DB_TABLES" \
    --max-seconds "$BENCH_DB_MAX_SECONDS" --out "$RUN_DIR/results.md" 2>&1 |
    tee "$RUN_DIR/summary.txt"
  say "results: $RUN_DIR/results.md"
}

main "$@"
