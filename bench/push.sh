#!/usr/bin/env bash
# The `make bench-push` harness: release build (or BENCH_BINARY), MariaDB, wrk,
# the bench dataset (1,000,000 torrents by default, loaded only when missing),
# then bench/push.py measures the push API on one tracker: the time from a push
# to the next announce that sees it, and whether pushes during an announce load
# slow the announces. See bench/README.md ("Push API").
#
#   bench/push.sh                                    build this checkout, measure
#   BENCH_BINARY=/work/before/chihaya bench/push.sh  the same against another build
#   BENCH_TORRENTS=100000 bench/push.sh              a smaller catalogue
#   BENCH_PUSH_ITERATIONS, BENCH_DURATION, BENCH_PUSH_RATE, BENCH_PUSH_BATCH,
#   BENCH_PEERS, BENCH_CONNS, BENCH_KEEP; BENCH_USERS, BENCH_SEED, BENCH_DB,
#   DATABASE_URL as for make bench
#
# Everything listens on 127.0.0.1; push.py stops its tracker at exit, also on
# error or Ctrl-C. Output goes to bench/runs/<timestamp>-push/.
set -euo pipefail

PROG=bench-push
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/bench
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH/lib.sh"

BENCH_TORRENTS=${BENCH_TORRENTS:-1000000}
dataset_knobs
BENCH_PUSH_ITERATIONS=${BENCH_PUSH_ITERATIONS:-2000}
BENCH_DURATION=${BENCH_DURATION:-15}
BENCH_DURATION=${BENCH_DURATION%s}
BENCH_PUSH_RATE=${BENCH_PUSH_RATE:-200}
BENCH_PUSH_BATCH=${BENCH_PUSH_BATCH:-10}
BENCH_PEERS=${BENCH_PEERS:-200000}
BENCH_CONNS=${BENCH_CONNS:-64}

main() {
  check_dataset_knobs
  check_int BENCH_PUSH_ITERATIONS "$BENCH_PUSH_ITERATIONS" 1
  check_int BENCH_DURATION "$BENCH_DURATION" 1
  check_int BENCH_PUSH_RATE "$BENCH_PUSH_RATE" 0
  check_int BENCH_PUSH_BATCH "$BENCH_PUSH_BATCH" 1
  check_int BENCH_PEERS "$BENCH_PEERS" 1
  check_int BENCH_CONNS "$BENCH_CONNS" 1
  start_run push
  tracker_binary measuring
  ensure_db
  ensure_wrk
  timed_dataset
  bench_py push.py --mariadb-pid "$MARIADB_PID" --wrk "$(command -v wrk)" \
    --iterations "$BENCH_PUSH_ITERATIONS" --duration "$BENCH_DURATION" \
    --push-rate "$BENCH_PUSH_RATE" --push-batch "$BENCH_PUSH_BATCH" \
    --peers "$BENCH_PEERS" --conns "$BENCH_CONNS" --seed "$BENCH_SEED"
}

main "$@"
