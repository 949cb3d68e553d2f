#!/usr/bin/env bash
# The `make bench-hostile` harness: release build (or BENCH_BINARY), MariaDB,
# the bench dataset (loaded only when missing), then bench/hostile.py runs the
# hostile-member scenarios, each against a freshly started tracker. See
# bench/README.md ("Hostile members").
#
#   bench/hostile.sh                                   build this checkout, all scenarios
#   BENCH_BINARY=/work/before/chihaya bench/hostile.sh the same against another build
#   HOSTILE_ONLY=overflow,oversized bench/hostile.sh   a subset
#   BENCH_KEEP=1: keep the scenarios' peer caches and journals; BENCH_USERS, BENCH_TORRENTS,
#   BENCH_SEED, BENCH_DB, DATABASE_URL as for make bench
#
# Everything listens on 127.0.0.1; hostile.py stops its trackers at exit, also
# on error or Ctrl-C. Output goes to bench/runs/<timestamp>-hostile/.
set -euo pipefail

PROG=bench-hostile
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/bench
# shellcheck source-path=SCRIPTDIR source=../scripts/db-lib.sh
. "$REPO/scripts/db-lib.sh"
# shellcheck source-path=SCRIPTDIR source=../scripts/apt-lib.sh
. "$REPO/scripts/apt-lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH/lib.sh"

BENCH_USERS=${BENCH_USERS:-10000}
BENCH_TORRENTS=${BENCH_TORRENTS:-100000}
BENCH_SEED=${BENCH_SEED:-1}
BENCH_DB=${BENCH_DB:-chihaya_bench}
BENCH_BINARY=${BENCH_BINARY:-}
HOSTILE_ONLY=${HOSTILE_ONLY:-}
BENCH_KEEP=${BENCH_KEEP:-0}
CARGO=${CARGO:-cargo}

RUN_DIR=''
BIN=''
DSN=''
MARIADB_PID=''

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $RUN_DIR ]]; then
    rm -rf "$RUN_DIR/dataset" "$RUN_DIR/dataset.txt"
    # The peer caches and journals (a few MB each); BENCH_KEEP=1 keeps them.
    [[ $BENCH_KEEP == 1 ]] || rm -rf "$RUN_DIR"/*/peer-cache.bin* "$RUN_DIR"/*/journal
    ((rc == 0)) || say "FAILED (exit $rc); logs are in $RUN_DIR"
  fi
  exit "$rc"
}

main() {
  [[ $BENCH_USERS =~ ^[0-9]+$ ]] && ((BENCH_USERS >= 100)) || die "BENCH_USERS must be at least 100"
  [[ $BENCH_TORRENTS =~ ^[0-9]+$ ]] && ((BENCH_TORRENTS >= 100)) || die "BENCH_TORRENTS must be at least 100"
  [[ $BENCH_SEED =~ ^[0-9]+$ ]] || die "BENCH_SEED must be a non-negative integer"
  [[ $BENCH_DB =~ ^[A-Za-z0-9_]+$ ]] || die "BENCH_DB must be a plain name"
  command -v python3 >/dev/null || die "python3 is needed"

  RUN_DIR=$BENCH/runs/$(date +%Y%m%d-%H%M%S)-hostile
  mkdir -p "$RUN_DIR"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  say "run directory $RUN_DIR"

  local binary
  if [[ -n $BENCH_BINARY ]]; then
    [[ -x $BENCH_BINARY ]] || die "BENCH_BINARY=$BENCH_BINARY is not an executable"
    binary=$(cd "$(dirname "$BENCH_BINARY")" && pwd)/$(basename "$BENCH_BINARY")
    say "not building: the scenarios run against $binary"
  else
    build
    binary=$BIN/chihaya
  fi
  ensure_db
  ensure_dataset

  local -a db=(--mysql "$MARIADB_CLIENT" --db-user "$DB_USER" --db-name "$BENCH_DB")
  if [[ -n $DB_SOCKET ]]; then
    db+=(--db-socket "$DB_SOCKET")
  else
    db+=(--db-host "$DB_HOST" --db-port "$DB_PORT")
  fi
  # The mariadb client of hostile.py reads the password from the environment.
  ((DB_HAS_PASS)) && export MYSQL_PWD=$DB_PASS
  # Not exec: the trap removes the sidecar afterwards. hostile.py handles
  # Ctrl-C itself (stops its trackers), so wait for it.
  python3 "$BENCH/hostile.py" --binary "$binary" --run-dir "$RUN_DIR" \
    --sidecar "$RUN_DIR/dataset.txt" --dsn "$DSN" "${db[@]}" \
    ${HOSTILE_ONLY:+--only "$HOSTILE_ONLY"}
}

main "$@"
