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
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH/lib.sh"

dataset_knobs
HOSTILE_ONLY=${HOSTILE_ONLY:-}

main() {
  check_dataset_knobs
  start_run hostile
  tracker_binary "the scenarios run against"
  ensure_db
  ensure_dataset
  bench_py hostile.py ${HOSTILE_ONLY:+--only "$HOSTILE_ONLY"}
}

main "$@"
