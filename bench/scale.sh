#!/usr/bin/env bash
# The `make bench-scale` harness: release build (or BENCH_BINARY), MariaDB, wrk,
# haproxy, the bench dataset (100,000 torrents by default, loaded only when
# missing), then bench/scale.py measures announces in three phases: one tracker
# alone, HAProxy (contrib/haproxy/chihaya.cfg) in front of it, and HAProxy in front
# of two trackers sharded by info_hash. See bench/README.md ("Scaling out").
#
#   bench/scale.sh                                    build this checkout, measure
#   BENCH_BINARY=/work/before/chihaya bench/scale.sh  the same against another build
#   BENCH_DURATION, BENCH_PEERS, BENCH_CONNS, BENCH_KEEP; BENCH_USERS,
#   BENCH_TORRENTS, BENCH_SEED, BENCH_DB, DATABASE_URL as for make bench
#
# Everything listens on 127.0.0.1; scale.py stops its trackers and haproxy at exit,
# also on error or Ctrl-C. Output goes to bench/runs/<timestamp>-scale/.
set -euo pipefail

PROG=bench-scale
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
BENCH_DURATION=${BENCH_DURATION:-15}
BENCH_DURATION=${BENCH_DURATION%s}
BENCH_PEERS=${BENCH_PEERS:-200000}
BENCH_CONNS=${BENCH_CONNS:-64}
BENCH_KEEP=${BENCH_KEEP:-0}
CARGO=${CARGO:-cargo}
# The HAProxy config of the repository, run with only its addresses changed.
HAPROXY_CFG=$REPO/contrib/haproxy/chihaya.cfg

RUN_DIR=''
BIN=''
DSN=''
MARIADB_PID=''

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $RUN_DIR ]]; then
    rm -rf "$RUN_DIR/dataset" "$RUN_DIR/dataset.txt"
    # The peer caches and the journals (tens of MB); BENCH_KEEP=1 keeps them.
    [[ $BENCH_KEEP == 1 ]] || rm -rf "$RUN_DIR"/*/*/peer-cache.bin* "$RUN_DIR"/*/*/journal
    ((rc == 0)) || say "FAILED (exit $rc); logs are in $RUN_DIR"
  fi
  exit "$rc"
}

# check_int NAME VALUE MIN : die unless VALUE is an integer >= MIN.
check_int() {
  if [[ ! $2 =~ ^[0-9]+$ ]] || ((10#$2 < $3)); then
    die "$1 must be an integer >= $3 (got '$2')"
  fi
}

main() {
  check_int BENCH_USERS "$BENCH_USERS" 100
  check_int BENCH_TORRENTS "$BENCH_TORRENTS" 100
  check_int BENCH_SEED "$BENCH_SEED" 0
  check_int BENCH_DURATION "$BENCH_DURATION" 1
  check_int BENCH_PEERS "$BENCH_PEERS" 1
  check_int BENCH_CONNS "$BENCH_CONNS" 1
  [[ $BENCH_DB =~ ^[A-Za-z0-9_]+$ ]] || die "BENCH_DB must be a plain name"
  command -v python3 >/dev/null || die "python3 is needed"
  [[ -r $HAPROXY_CFG ]] || die "$HAPROXY_CFG not found: the bench runs the repository's HAProxy config"

  RUN_DIR=$BENCH/runs/$(date +%Y%m%d-%H%M%S)-scale
  mkdir -p "$RUN_DIR"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  say "run directory $RUN_DIR"

  local binary
  if [[ -n $BENCH_BINARY ]]; then
    [[ -x $BENCH_BINARY ]] || die "BENCH_BINARY=$BENCH_BINARY is not an executable"
    binary=$(cd "$(dirname "$BENCH_BINARY")" && pwd)/$(basename "$BENCH_BINARY")
    say "not building: measuring $binary"
  else
    # shellcheck disable=SC2119 # build's arguments are extra cargo arguments: none here
    build
    binary=$BIN/chihaya
  fi
  ensure_db
  ensure_wrk
  ensure_haproxy
  local t0=$SECONDS
  ensure_dataset
  say "dataset ready after $((SECONDS - t0)) s"

  local -a db=(--mysql "$MARIADB_CLIENT" --db-user "$DB_USER" --db-name "$BENCH_DB")
  if [[ -n $DB_SOCKET ]]; then
    db+=(--db-socket "$DB_SOCKET")
  else
    db+=(--db-host "$DB_HOST" --db-port "$DB_PORT")
  fi
  # The mariadb client of scale.py reads the password from the environment.
  ((DB_HAS_PASS)) && export MYSQL_PWD=$DB_PASS
  # Not exec: the trap removes the sidecar afterwards. scale.py handles Ctrl-C
  # itself (stops its trackers and haproxy), so wait for it.
  python3 "$BENCH/scale.py" --binary "$binary" --run-dir "$RUN_DIR" \
    --sidecar "$RUN_DIR/dataset.txt" --dsn "$DSN" "${db[@]}" \
    --mariadb-pid "$MARIADB_PID" --wrk "$(command -v wrk)" \
    --haproxy "$(command -v haproxy)" --haproxy-cfg "$HAPROXY_CFG" \
    --duration "$BENCH_DURATION" --peers "$BENCH_PEERS" --conns "$BENCH_CONNS" \
    --seed "$BENCH_SEED"
}

main "$@"
