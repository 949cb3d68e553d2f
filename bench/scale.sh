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
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH/lib.sh"

dataset_knobs
BENCH_DURATION=${BENCH_DURATION:-15}
BENCH_DURATION=${BENCH_DURATION%s}
BENCH_PEERS=${BENCH_PEERS:-200000}
BENCH_CONNS=${BENCH_CONNS:-64}
# The HAProxy config of the repository, run with only its addresses changed.
HAPROXY_CFG=$REPO/contrib/haproxy/chihaya.cfg

main() {
  check_dataset_knobs
  check_int BENCH_DURATION "$BENCH_DURATION" 1
  check_int BENCH_PEERS "$BENCH_PEERS" 1
  check_int BENCH_CONNS "$BENCH_CONNS" 1
  [[ -r $HAPROXY_CFG ]] || die "$HAPROXY_CFG not found: the bench runs the repository's HAProxy config"
  start_run scale
  tracker_binary measuring
  ensure_db
  ensure_wrk
  ensure_haproxy
  timed_dataset
  bench_py scale.py --mariadb-pid "$MARIADB_PID" --wrk "$(command -v wrk)" \
    --haproxy "$(command -v haproxy)" --haproxy-cfg "$HAPROXY_CFG" \
    --duration "$BENCH_DURATION" --peers "$BENCH_PEERS" --conns "$BENCH_CONNS" \
    --seed "$BENCH_SEED"
}

main "$@"
