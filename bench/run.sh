#!/usr/bin/env bash
# The `make bench` harness: build, dataset, tracker, fill, measured wrk run,
# baseline, summary. See bench/README.md for what it measures and the knobs.
#
#   bench/run.sh                    the default scenario (make bench)
#   BENCH_RELOAD=1 bench/run.sh     reload under load + start-up time (make bench-reload)
#
# The default scenario runs the tracker twice on the same dataset and load:
# without the journal (chihaya_commits dropped), then with it, and reports what
# the journal costs (CPU and bytes per announce).
#
# Everything listens on 127.0.0.1 only; the tracker and the baseline are
# stopped at exit, also on error or Ctrl-C. Output files go to
# bench/runs/<timestamp>/ (path printed at the end).
set -euo pipefail

PROG=bench
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/bench
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH/lib.sh"

# ------------------------------------------------------------------ knobs --
BENCH_RELOAD=${BENCH_RELOAD:-0}
if [[ $BENCH_RELOAD == 1 ]]; then
  BENCH_TORRENTS=${BENCH_TORRENTS:-1000000}
else
  BENCH_TORRENTS=${BENCH_TORRENTS:-100000}
fi
dataset_knobs # BENCH_USERS, BENCH_SEED, BENCH_DB, BENCH_KEEP, BENCH_BINARY, CARGO
BENCH_PEERS=${BENCH_PEERS:-200000}
BENCH_CONNS=${BENCH_CONNS:-64}
BENCH_DURATION=${BENCH_DURATION:-20}
BENCH_DURATION=${BENCH_DURATION%s}
BENCH_BODY_BYTES=${BENCH_BODY_BYTES:-}

WRK_TIMEOUT=5s
FLUSH_INTERVAL=3 # the tracker's default intervals.flush
DATABASE_RELOAD=45 # the tracker's default intervals.database_reload
PURGE_PERIOD=120   # the tracker's default intervals.purge_inactive_peers
PEER_INACTIVITY=3900 # the tracker's default intervals.peer_inactivity
DRAIN_CAP=60
STARTUP_TIMEOUT=180

# ---------------------------------------------------------------- state --
# RUN_DIR, BIN, TRACKER_BIN ($BIN/chihaya, or BENCH_BINARY), DSN, MARIADB_PID:
# bench/lib.sh.
TOKEN=''
TRACKER_PID=''
TRACKER_URL=''
BASELINE_PID=''
declare -A R=()      # results: R[label.name]
declare -a PHASES=() # "name seconds" of each phase, for the summary

# ----------------------------------------------------------------- helpers --
# calc EXPR : awk arithmetic, for floats.
calc() {
  awk "BEGIN { print $1 }"
}

# phase NAME COMMAND... : run COMMAND, print and record how long it took.
phase() {
  local name=$1 t0=$EPOCHREALTIME secs
  shift
  say "--- $name"
  "$@"
  secs=$(calc "$EPOCHREALTIME - $t0")
  PHASES+=("$name $(printf '%.1f' "$secs")")
  say "--- $name done in $(printf '%.1f' "$secs") s"
}

probe() {
  python3 "$BENCH/probe.py" "$@"
}

# load_kv LABEL TEXT : store every name=value word of TEXT as R[LABEL.name].
load_kv() {
  local label=$1 word
  local -a words
  read -r -d '' -a words <<<"$2" || true
  for word in "${words[@]}"; do
    [[ $word == *=* ]] && R[$label.${word%%=*}]=${word#*=}
  done
  return 0
}

# get LABEL.NAME [DEFAULT] : a result, or DEFAULT (n/a when not given) when
# there is none.
get() {
  if [[ -n ${R[$1]:-} ]]; then
    printf '%s' "${R[$1]}"
  elif (($# > 1)); then
    printf '%s' "$2"
  else
    printf 'n/a'
  fi
}

# per_request CPU_SECONDS REQUESTS : microseconds per request, or n/a.
per_request() {
  if [[ -z $1 || -z $2 || $2 == 0 ]]; then
    printf 'n/a'
  else
    printf '%.1f' "$(calc "$1 * 1000000 / $2")"
  fi
}

# --------------------------------------------------------------- setup --
# build, given_binary, ensure_db, ensure_wrk and make_dataset are in bench/lib.sh.
build_bench() {
  build --example baseline --example bench_reads
  [[ -x $BIN/examples/baseline && -x $BIN/examples/bench_reads ]] ||
    die "built binaries not found in $BIN"
  TRACKER_BIN=$BIN/chihaya
  if [[ -n $BENCH_BINARY ]]; then
    given_binary
    say "tracker under test: $TRACKER_BIN (BENCH_BINARY; the baseline and bench_reads are this checkout's)"
  fi
}

# ------------------------------------------------------------ processes --
# start_tracker LABEL DATABASE_RELOAD DIR : start the release tracker with its
# peer cache, spill file and journal in DIR, wait for /alive. Sets
# R[LABEL.journal] to on or off (off when it warned that chihaya_commits is missing).
start_tracker() {
  local label=$1 reload=$2 dir=$3 port t0 cfg=$RUN_DIR/config-$1.json log=$RUN_DIR/tracker-$1.log
  mkdir -p "$dir"
  port=$(probe free-port)
  cat >"$cfg" <<EOF
{
  "addr": "127.0.0.1:$port",
  "admin_token": "$TOKEN",
  "log_flushes": false,
  "intervals": { "database_reload": $reload }
}
EOF
  TRACKER_URL=http://127.0.0.1:$port
  t0=$EPOCHREALTIME
  DB_DSN=$DSN "$TRACKER_BIN" --config "$cfg" --peer-cache "$dir/peer-cache.bin" \
    --spill "$dir/accounting-spill.jsonl" --journal "$dir/journal" --drain-timeout 30 \
    2>>"$log" &
  TRACKER_PID=$!
  if ! R[$label.startup_s]=$(probe wait-alive "$TRACKER_URL/alive" --since "$t0" \
    --pid "$TRACKER_PID" --timeout "$STARTUP_TIMEOUT"); then
    tail -n 20 "$log" >&2 || true
    die "the tracker did not start (log: $log)"
  fi
  R[$label.journal]=on
  if grep -q 'chihaya_commits is missing' "$log"; then R[$label.journal]=off; fi
  say "tracker [$label] pid $TRACKER_PID on $TRACKER_URL, database_reload $reload s," \
    "journal $(get "$label.journal") ($dir/journal)," \
    "answered /alive $(get "$label.startup_s") s after start"
}

# stop_pid PID NAME : SIGTERM, wait up to 60 s, then SIGKILL. Sets STOP_SECS.
stop_pid() {
  local pid=$1 name=$2 t0=$EPOCHREALTIME i
  STOP_SECS=0
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) still running 60 s after SIGTERM, killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  STOP_SECS=$(printf '%.1f' "$(calc "$EPOCHREALTIME - $t0")")
}

stop_tracker() {
  local label=$1
  stop_pid "$TRACKER_PID" tracker
  TRACKER_PID=''
  R[$label.shutdown_s]=$STOP_SECS
  say "tracker [$label] stopped in $STOP_SECS s (it writes the peer cache and what is pending)"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $TRACKER_PID ]]; then stop_pid "$TRACKER_PID" tracker; fi
  if [[ -n $BASELINE_PID ]]; then stop_pid "$BASELINE_PID" baseline; fi
  if [[ -n $RUN_DIR && $BENCH_KEEP != 1 ]]; then
    # The big files (the journal of a run holds every announce of it); BENCH_KEEP=1
    # keeps them.
    rm -rf "$RUN_DIR/dataset" "$RUN_DIR/dataset.txt" "$RUN_DIR"/peer-cache.bin* \
      "$RUN_DIR"/*/peer-cache.bin* "$RUN_DIR/journal" "$RUN_DIR"/*/journal
  fi
  if ((rc != 0)) && [[ -n $RUN_DIR ]]; then
    say "FAILED (exit $rc); logs are in $RUN_DIR"
  fi
  exit "$rc"
}

# ----------------------------------------------------------------- load --
# wrk_cmd SECONDS URL OPTION... : set WRK_CMD to a wrk command line for announce.lua.
wrk_cmd() {
  local secs=$1 url=$2
  shift 2
  WRK_CMD=(wrk -t1 "-c$BENCH_CONNS" "-d${secs}s" --timeout "$WRK_TIMEOUT"
    -s "$BENCH/announce.lua" "$url"
    -- "dataset=$RUN_DIR/dataset.txt" "peers=$BENCH_PEERS" "seed=$BENCH_SEED" "$@")
}

# populate LABEL : every simulated peer announces once (event=started).
populate() {
  local label=$1 line
  # The duration is a bound only: the script ends wrk as soon as every peer
  # has been answered.
  wrk_cmd $((60 + BENCH_PEERS / 1000)) "$TRACKER_URL" mode=populate
  "${WRK_CMD[@]}" >"$RUN_DIR/populate-$label.log" 2>&1 ||
    die "wrk (populate) failed, see $RUN_DIR/populate-$label.log"
  line=$(grep '^BENCH ' "$RUN_DIR/populate-$label.log" | tail -n 1) ||
    die "no result from wrk (populate), see $RUN_DIR/populate-$label.log"
  load_kv "populate-$label" "$line"
  local answered ok
  answered=$(get "populate-$label.answered" 0)
  ok=$(get "populate-$label.ok" 0)
  R[$label.peers]=$(probe metric "$TRACKER_URL/metrics" "$TOKEN" chihaya_peers)
  say "populate [$label]: $answered of $BENCH_PEERS announces answered in" \
    "$(get "populate-$label.seconds") s ($(printf '%.0f' "$(get "populate-$label.rps" 0)")/s)," \
    "$ok ok, failures $(get "populate-$label.failures"), non200 $(get "populate-$label.non200");" \
    "tracker holds $(get "$label.peers") peers"
  ((answered == BENCH_PEERS)) || say "WARNING: populate answered $answered of $BENCH_PEERS announces"
  ((ok == BENCH_PEERS)) || say "WARNING: populate had $((BENCH_PEERS - ok)) unsuccessful announces"
}

# measure LABEL URL [PROBE_OPTION...] [-- SCRIPT_OPTION...] : the measured wrk
# run, through `probe.py measure` (CPU and RSS from /proc, and for the tracker
# the torrent reloads during the run and the drain time after it).
measure() {
  local label=$1 url=$2 out line
  shift 2
  local -a probe_opts=() script_opts=()
  while (($#)) && [[ $1 != -- ]]; do probe_opts+=("$1"); shift; done
  (($#)) && shift
  script_opts=("$@")
  wrk_cmd "$BENCH_DURATION" "$url" mode=run "${script_opts[@]}"
  out=$(probe measure --log "$RUN_DIR/wrk-$label.log" "${probe_opts[@]}" -- "${WRK_CMD[@]}") ||
    die "wrk failed, see $RUN_DIR/wrk-$label.log"
  load_kv "$label" "$out"
  line=$(grep '^BENCH ' "$RUN_DIR/wrk-$label.log" | tail -n 1) ||
    die "no result from wrk, see $RUN_DIR/wrk-$label.log"
  load_kv "$label" "$line"
  grep -E '^(failure reason|HTTP status)' "$RUN_DIR/wrk-$label.log" >&2 || true
  say "run [$label]: $(get "$label.requests") requests, $(printf '%.0f' "$(get "$label.rps" 0)")/s," \
    "p99 $(get "$label.p99_ms") ms, failures $(get "$label.failures"), non200 $(get "$label.non200")"
}

# The tables whose writes the summary counts, and the probe options that count
# them: rows written and write statements sent, per table (chihaya_rows_written_total,
# chihaya_statements_total), over the run and, with the suffix _total, the drain.
WRITE_TABLES=(users torrents transfer_history transfer_ips snatches)
WRITE_DELTAS=()
for t in "${WRITE_TABLES[@]}"; do
  WRITE_DELTAS+=(--delta "rows_$t=chihaya_rows_written_total{type=\"$t\"}")
  WRITE_DELTAS+=(--delta "statements_$t=chihaya_statements_total{type=\"$t\"}")
done

# tracker_run LABEL DATABASE_RELOAD DIR [on|off] : start (state files in DIR),
# fill, measure, drain, stop; with on or off, die unless the tracker's journal is.
tracker_run() {
  local label=$1 want=${4:-}
  phase "start tracker [$label]" start_tracker "$label" "$2" "$3"
  if [[ -n $want && $(get "$label.journal") != "$want" ]]; then
    die "tracker [$label]: journal $(get "$label.journal"), expected $want (log: $RUN_DIR/tracker-$label.log)"
  fi
  phase "populate [$label]" populate "$label"
  # journal_bytes: chihaya_journal_bytes_total right after the run minus right
  # before it (the fill excluded); tracker_write_bytes / tracker_wchar from
  # /proc/<pid>/io over the same run.
  phase "measured run [$label], ${BENCH_DURATION} s, and drain" \
    measure "$label" "$TRACKER_URL" --pid "tracker=$TRACKER_PID" --pid "mariadb=$MARIADB_PID" \
    --metrics "$TRACKER_URL/metrics" --token "$TOKEN" --drain-cap "$DRAIN_CAP" \
    --delta 'reloads=chihaya_reload_seconds_count{type="torrents"}' \
    --delta 'reload_secs=chihaya_reload_seconds_sum{type="torrents"}' \
    --delta 'journal_bytes=chihaya_journal_bytes_total' \
    "${WRITE_DELTAS[@]}"
  say "drain [$label]: nothing pending $(get "$label.drain_s") s after the run;" \
    "$(get "$label.reloads") torrent reloads during the run;" \
    "$(get "$label.journal_bytes") bytes journaled, $(get "$label.tracker_write_bytes") bytes written to disk"
  phase "stop tracker [$label]" stop_tracker "$label"
}

# reads : what the tracker's periodic reads cost MariaDB on the database the
# journal run left (its tracker stopped, so nothing else runs there):
# examples/bench_reads runs the library's loads and purge updates and prints a
# BENCH-READS line, kept as R[reads.*].
reads() {
  local out line
  out=$("$BIN/examples/bench_reads" --dsn "$DSN" --mariadb-pid "$MARIADB_PID" \
    --inactivity "$PEER_INACTIVITY" --seed "$BENCH_SEED" 2>"$RUN_DIR/reads.log") || {
    cat "$RUN_DIR/reads.log" >&2
    die "bench_reads failed, see $RUN_DIR/reads.log"
  }
  cat "$RUN_DIR/reads.log" >&2
  line=$(grep '^BENCH-READS ' <<<"$out" | tail -n 1) || die "no result from bench_reads"
  load_kv reads "$line"
}

# prepare_db LABEL on|off : reload the dataset generated into $RUN_DIR/dataset
# (the same rows for every run); off: without chihaya_commits, i.e. no journal.
prepare_db() {
  load_dataset
  if [[ $2 == off ]]; then
    say "dropping chihaya_commits: tracker [$1] runs without the journal"
    db_client -e 'DROP TABLE chihaya_commits' "$BENCH_DB" || die "cannot drop chihaya_commits"
  fi
}

# restore_commits : put chihaya_commits back (database/schema.sql only creates
# what is missing), so the bench database is complete again for what comes next.
restore_commits() {
  db_client "$BENCH_DB" <"$REPO/database/schema.sql" || die "cannot recreate chihaya_commits"
}

baseline_run() {
  local port t0 bytes=${BENCH_BODY_BYTES:-}
  if [[ -z $bytes ]]; then
    bytes=$(printf '%.0f' "$(get main.avg_body 380)")
    ((bytes > 0)) || bytes=380
  fi
  R[baseline.body_bytes]=$bytes
  port=$(probe free-port)
  t0=$EPOCHREALTIME
  "$BIN/examples/baseline" --addr "127.0.0.1:$port" --body-bytes "$bytes" \
    2>>"$RUN_DIR/baseline.log" &
  BASELINE_PID=$!
  probe wait-alive "http://127.0.0.1:$port/alive" --since "$t0" --pid "$BASELINE_PID" \
    --timeout 30 >/dev/null || die "the baseline server did not start, see $RUN_DIR/baseline.log"
  say "baseline pid $BASELINE_PID on 127.0.0.1:$port, $bytes-byte body"
  measure baseline "http://127.0.0.1:$port" --pid "baseline=$BASELINE_PID"
  # CPU per request falls as the rate rises (more requests per wakeup and per
  # system call), so the floor the tracker is held to is the one at its own rate.
  local rate
  rate=$(printf '%.0f' "$(get main.rps 0)")
  if ((rate > 0)); then
    measure baseline_paced "http://127.0.0.1:$port" --pid "baseline=$BASELINE_PID" -- "rate=$rate"
  fi
  stop_pid "$BASELINE_PID" baseline
  BASELINE_PID=''
}

# ------------------------------------------------------------- summary --
# run_line LABEL [NOUN] : NOUN/s, latency, failures of one measured run.
run_line() {
  printf '%s/s %.0f  p50 %.2f ms  p99 %.2f ms  p99.9 %.1f ms  failures %s  non200 %s  socket errors %s' \
    "${2:-announces}" "$(get "$1.rps" 0)" "$(get "$1.p50_ms" 0)" "$(get "$1.p99_ms" 0)" \
    "$(get "$1.p999_ms" 0)" "$(get "$1.failures")" "$(get "$1.non200")" "$(get "$1.sock_errors")"
}

# host_line LABEL : how busy the host was during a run, and with what.
host_line() {
  local l=$1 host mine other
  host=$(get "$l.host_cpu_s" 0)
  mine=$(calc "$(get "$l.cmd_cpu_s" 0) + $(get "$l.tracker_cpu_s" 0) + $(get "$l.mariadb_cpu_s" 0) + $(get "$l.baseline_cpu_s" 0)")
  other=$(calc "$host - $mine")
  printf 'host %s CPUs %.0f %% busy: wrk %.2f, server %.2f, MariaDB %.2f, rest %.2f cores' \
    "$(get "$l.host_cpus")" "$(calc "100 * $host / $(get "$l.wall_s" 1) / $(get "$l.host_cpus" 1)")" \
    "$(calc "$(get "$l.cmd_cpu_s" 0) / $(get "$l.wall_s" 1)")" \
    "$(calc "($(get "$l.tracker_cpu_s" 0) + $(get "$l.baseline_cpu_s" 0)) / $(get "$l.wall_s" 1)")" \
    "$(calc "$(get "$l.mariadb_cpu_s" 0) / $(get "$l.wall_s" 1)")" \
    "$(calc "$other / $(get "$l.wall_s" 1)")"
}

# cost_line LABEL : CPU per announce, RSS, drain time of one tracker run.
cost_line() {
  local drain
  drain=$(get "$1.drain_s")
  [[ $drain == timeout ]] && drain="> $DRAIN_CAP"
  printf 'tracker CPU %s µs/announce  MariaDB CPU %s µs/announce  tracker RSS %.0f MB  pending drained %s s after load' \
    "$(per_request "$(get "$1.tracker_cpu_s" '')" "$(get "$1.requests" 0)")" \
    "$(per_request "$(get "$1.mariadb_cpu_s" '')" "$(get "$1.requests" 0)")" \
    "$(get "$1.tracker_rss_mb" 0)" "$drain"
}

spill_note() {
  local f
  for f in "$RUN_DIR/accounting-spill.jsonl" "$RUN_DIR"/*/accounting-spill.jsonl; do
    if [[ -s $f ]]; then
      printf 'bench: WARNING %s rows were spilled to %s\n' "$(wc -l <"$f")" "$f"
    fi
  done
}

# per_1000 CPU_SECONDS REQUESTS : CPU seconds per 1000 requests, or n/a.
per_1000() {
  if [[ -z $1 || -z $2 || $2 == 0 ]]; then
    printf 'n/a'
  else
    printf '%.4f' "$(calc "$1 * 1000 / $2")"
  fi
}

# bytes_per BYTES REQUESTS : bytes per request, or n/a.
bytes_per() {
  if [[ -z $1 || -z $2 || $2 == 0 ]]; then
    printf 'n/a'
  else
    printf '%.1f' "$(calc "$1 / $2")"
  fi
}

# disk_source : write_bytes from /proc/<pid>/io, or wchar when the former
# could not be read (then sockets are included).
disk_source() {
  if [[ -n $(get main.tracker_write_bytes '') ]]; then printf 'write_bytes'; else printf 'wchar'; fi
}

# journal_line LABEL : one run's CPU and bytes per announce.
journal_line() {
  local l=$1 n src
  n=$(get "$l.requests" 0)
  src=$(disk_source)
  printf 'announces/s %.0f  tracker CPU %s s per 1000 announces  journaled %s bytes/announce  written to disk %s bytes/announce (%s)  write calls %s bytes/announce (wchar)' \
    "$(get "$l.rps" 0)" "$(per_1000 "$(get "$l.tracker_cpu_s" '')" "$n")" \
    "$(bytes_per "$(get "$l.journal_bytes" '')" "$n")" \
    "$(bytes_per "$(get "$l.tracker_$src" '')" "$n")" "$src" \
    "$(bytes_per "$(get "$l.tracker_wchar" '')" "$n")"
}

# writes_line LABEL : what one run (load and drain) cost the database: rows
# written per announce and statements, per table, and MariaDB's CPU per announce.
writes_line() {
  local l=$1 n t rows=0 out=''
  n=$(get "$l.requests" 0)
  for t in "${WRITE_TABLES[@]}"; do
    out+=$(printf '%s %s rows/announce in %s statements, ' "$t" \
      "$(bytes_per "$(get "$l.rows_${t}_total" '')" "$n")" "$(get "$l.statements_${t}_total" n/a)")
    rows=$(calc "$rows + $(get "$l.rows_${t}_total" 0)")
  done
  printf '%sall %s rows/announce; MariaDB CPU %s µs/announce over the run and the drain' \
    "$out" "$(bytes_per "$rows" "$n")" "$(per_request "$(get "$l.mariadb_cpu_total_s" '')" "$n")"
}

# amortized MS PERIOD_S LABEL : MariaDB CPU in µs per announce of a read costing
# MS ms that runs every PERIOD_S seconds, at the announce rate of run LABEL.
amortized() {
  local rate
  rate=$(get "$3.rps" 0)
  if [[ $1 == n/a || $rate == 0 ]]; then
    printf 'n/a'
  else
    printf '%.3f' "$(calc "$1 * 1000 / ($2 * $rate)")"
  fi
}

# summary_db : the database's bill for the journal run: writes (run and
# drain, per table), then the reads, amortized over their periods at the run's
# rate. The targets and starting figures are those of issue 14.
summary_db() {
  local n writes rows reload scan keys t
  n=$(get main.requests 0)
  writes=$(per_request "$(get main.mariadb_cpu_total_s '')" "$n")
  rows=0
  for t in "${WRITE_TABLES[@]}"; do rows=$(calc "$rows + $(get "main.rows_${t}_total" 0)"); done
  printf 'bench: database bill (journal run): writes %s µs of MariaDB CPU per announce over the run and the drain (target ≤ 15; 43.6 before issue 14), %s rows written per announce (target ≤ 2.7; 3.5 before)\n' \
    "$writes" "$(bytes_per "$rows" "$n")"
  if [[ -z ${R[reads.reload_mariadb_ms]:-} ]]; then
    printf 'bench: database reads: not measured\n'
    return 0
  fi
  reload=$(get reads.reload_mariadb_ms)
  scan=$(get reads.purge_scan_mariadb_ms)
  keys=$(get reads.keys 1)
  printf 'bench: database reads (%s transfer_history rows), MariaDB CPU and rows read each time:' "$(get reads.history_rows)"
  local r
  for r in users hit_and_runs torrents group_freeleech global_freeleech clients purge_scan hit_and_runs_before; do
    printf ' %s %.1f ms %.0f rows;' "$r" "$(get "reads.${r}_mariadb_ms" 0)" "$(get "reads.${r}_rows_read" 0)"
  done
  printf ' purge by key %.1f µs %.1f rows per purged peer\n' \
    "$(calc "$(get reads.purge_keys_mariadb_ms 0) * 1000 / $keys")" "$(calc "$(get reads.purge_keys_rows_read 0) / $keys")"
  local before
  before=$(get reads.reload_before_mariadb_ms)
  printf 'bench: database reads before issue 14: hit-and-runs of every user %.1f ms %.0f rows read, a reload cycle %.1f ms %.0f rows read\n' \
    "$(get reads.hit_and_runs_before_mariadb_ms 0)" "$(get reads.hit_and_runs_before_rows_read 0)" \
    "$before" "$(get reads.reload_before_rows_read 0)"
  printf 'bench: database reads per announce at %.0f announces/s: reload cycle %s ms every %s s = %s µs (before: %s µs); purge over the whole table %s ms every %s s = %s µs (before: every purge, %s s = %s µs); by key %s µs per purged peer\n' \
    "$(get main.rps 0)" "$(printf '%.1f' "$reload")" "$DATABASE_RELOAD" "$(amortized "$reload" "$DATABASE_RELOAD" main)" \
    "$(amortized "$before" "$DATABASE_RELOAD" main)" \
    "$(printf '%.1f' "$scan")" "$PEER_INACTIVITY" "$(amortized "$scan" "$PEER_INACTIVITY" main)" \
    "$PURGE_PERIOD" "$(amortized "$scan" "$PURGE_PERIOD" main)" \
    "$(printf '%.1f' "$(calc "$(get reads.purge_keys_mariadb_ms 0) * 1000 / $keys")")"
  printf 'BENCH-DB writes_us_per_announce=%s rows_per_announce=%s reload_ms=%s reload_us_per_announce=%s reload_before_us_per_announce=%s purge_scan_ms=%s purge_scan_us_per_announce=%s purge_scan_before_us_per_announce=%s\n' \
    "$writes" "$(bytes_per "$rows" "$n")" "$reload" "$(amortized "$reload" "$DATABASE_RELOAD" main)" \
    "$(amortized "$before" "$DATABASE_RELOAD" main)" \
    "$scan" "$(amortized "$scan" "$PEER_INACTIVITY" main)" "$(amortized "$scan" "$PURGE_PERIOD" main)"
}

# summary_journal : the journal's cost, journal run (main) against the run without.
summary_journal() {
  local on off pct=n/a n src
  n=$(get main.requests 0)
  src=$(disk_source)
  on=$(per_1000 "$(get main.tracker_cpu_s '')" "$n")
  off=$(per_1000 "$(get nojournal.tracker_cpu_s '')" "$(get nojournal.requests 0)")
  if [[ $on != n/a && $off != n/a && $(get nojournal.tracker_cpu_s 0) != 0 ]]; then
    pct=$(printf '%+.1f' "$(calc "100 * ($(get main.tracker_cpu_s) / $n) / ($(get nojournal.tracker_cpu_s) / $(get nojournal.requests)) - 100")")
  fi
  local jb db
  jb=$(bytes_per "$(get main.journal_bytes '')" "$n")
  db=$(bytes_per "$(get "main.tracker_$src" '')" "$n")
  printf 'bench: journal off: %s\n' "$(run_line nojournal)"
  printf 'bench: journal off: %s\n' "$(cost_line nojournal)"
  printf 'bench: journal off: %s\n' "$(journal_line nojournal)"
  printf 'bench: journal on:  %s\n' "$(journal_line main)"
  printf 'bench: journal: %s %% tracker CPU per announce (target ≤ 10 %%), %s bytes/announce journaled (target ≤ 200), %s bytes/announce written to disk\n' \
    "$pct" "$jb" "$db"
  printf 'bench: journal-off run: %s\n' "$(host_line nojournal)"
  printf 'bench: database writes, journal off: %s\n' "$(writes_line nojournal)"
  printf 'bench: database writes, journal on:  %s\n' "$(writes_line main)"
  printf 'BENCH-JOURNAL order=off,on cpu_pct=%s journal_bytes_per_announce=%s disk_bytes_per_announce=%s disk_source=%s' \
    "$pct" "$jb" "$db" "$src"
  local l
  for l in main nojournal; do
    printf ' %s_rps=%.1f %s_requests=%s %s_cpu_s_per_1000=%s %s_journal_bytes=%s %s_write_bytes=%s %s_wchar=%s' \
      "$l" "$(get "$l.rps" 0)" "$l" "$(get "$l.requests" 0)" \
      "$l" "$(per_1000 "$(get "$l.tracker_cpu_s" '')" "$(get "$l.requests" 0)")" \
      "$l" "$(get "$l.journal_bytes" '')" "$l" "$(get "$l.tracker_write_bytes" '')" "$l" "$(get "$l.tracker_wchar" '')"
  done
  printf '\n'
}

summary_default() {
  local t b ratio drain
  local bp ratio_fast
  t=$(per_request "$(get main.tracker_cpu_s '')" "$(get main.requests 0)")
  b=$(per_request "$(get baseline.baseline_cpu_s '')" "$(get baseline.requests 0)")
  bp=$(per_request "$(get baseline_paced.baseline_cpu_s '')" "$(get baseline_paced.requests 0)")
  ratio=n/a ratio_fast=n/a
  [[ $t != n/a && $bp != n/a ]] && ratio=$(printf '%.2f' "$(calc "$t / $bp")")
  [[ $t != n/a && $b != n/a ]] && ratio_fast=$(printf '%.2f' "$(calc "$t / $b")")
  drain=$(get main.drain_s)
  [[ $drain == timeout ]] && drain="> $DRAIN_CAP"
  printf 'bench: dataset %s users, %s torrents; %s peers (tracker held %s after the fill); wrk 1 thread, %s connections, %s s per run\n' \
    "$BENCH_USERS" "$BENCH_TORRENTS" "$BENCH_PEERS" "$(get main.peers)" "$BENCH_CONNS" "$BENCH_DURATION"
  printf 'bench: two tracker runs, journal off then on; the lines down to "tracker start-up" are the journal run'"'"'s\n'
  printf 'bench: %s\n' "$(run_line main)"
  printf 'bench: tracker CPU %s µs/announce   baseline CPU %s µs/request at the same rate   ratio %s (target ≤ 1.30)\n' \
    "$t" "$bp" "$ratio"
  printf 'bench: baseline CPU %s µs/request at its full rate   ratio %s\n' "$b" "$ratio_fast"
  printf 'bench: MariaDB CPU %s µs/announce   tracker RSS %.0f MB (target ≤ 60)   pending drained %s s after load (target ≤ %d s = 2 × flush)\n' \
    "$(per_request "$(get main.mariadb_cpu_s '')" "$(get main.requests 0)")" \
    "$(get main.tracker_rss_mb 0)" "$drain" $((2 * FLUSH_INTERVAL))
  printf 'bench: baseline (%s-byte body), full rate: %s\n' "$(get baseline.body_bytes)" "$(run_line baseline requests)"
  printf 'bench: baseline, paced at the tracker rate: %s\n' "$(run_line baseline_paced requests)"
  printf 'bench: tracker run: %s\n' "$(host_line main)"
  printf 'bench: baseline run: %s\n' "$(host_line baseline)"
  printf 'bench: paced baseline run: %s\n' "$(host_line baseline_paced)"
  printf 'bench: tracker start-up %s s, shutdown %s s\n' "$(get main.startup_s)" "$(get main.shutdown_s)"
  summary_journal
  summary_db
  spill_note
}

summary_reload() {
  local a b
  a=$(get noreload.p99_ms)
  b=$(get reload.p99_ms)
  printf 'bench-reload: dataset %s users, %s torrents; %s peers; wrk 1 thread, %s connections, %s s per run\n' \
    "$BENCH_USERS" "$BENCH_TORRENTS" "$BENCH_PEERS" "$BENCH_CONNS" "$BENCH_DURATION"
  local cached
  # "Loaded <u> users, <t> torrents, <p> peers (<duration>)"
  cached=$(sed -n 's/.*Loaded [0-9]* users, [0-9]* torrents, \([0-9]*\) peers.*/\1/p' \
    "$RUN_DIR/tracker-reload.log" | head -n 1)
  printf 'bench-reload: start-up %s s with %s torrents and a %s-peer cache from the previous run (cold, no cache: %s s)\n' \
    "$(get reload.startup_s)" "$BENCH_TORRENTS" "${cached:-?}" "$(get noreload.startup_s)"
  printf 'bench-reload: database_reload 3600: %s\n' "$(run_line noreload)"
  printf 'bench-reload: database_reload 2:    %s\n' "$(run_line reload)"
  local n
  n=$(get reload.reloads 0)
  if ((n > 0)); then
    printf 'bench-reload: %s torrent reloads completed during the reload run, %.1f s each on average\n' \
      "$n" "$(calc "$(get reload.reload_secs 0) / $n")"
  else
    printf 'bench-reload: WARNING no torrent reload completed during the reload run\n'
  fi
  if [[ $a != n/a && $b != n/a ]]; then
    printf 'bench-reload: p99 with reloads %.2f ms vs %.2f ms without: ×%.2f\n' "$b" "$a" "$(calc "$b / $a")"
  fi
  printf 'bench-reload: no reload: %s\n' "$(cost_line noreload)"
  printf 'bench-reload: reload:    %s\n' "$(cost_line reload)"
  printf 'bench-reload: no reload: %s\n' "$(host_line noreload)"
  printf 'bench-reload: reload:    %s\n' "$(host_line reload)"
  spill_note
}

print_phases() {
  local p out=''
  for p in "${PHASES[@]}"; do out+="${p% *} ${p##* } s; "; done
  printf '%s: phases: %s\n' "$PROG" "${out%; }"
}

# ---------------------------------------------------------------- main --
main() {
  check_int BENCH_USERS "$BENCH_USERS" 1
  check_int BENCH_TORRENTS "$BENCH_TORRENTS" 1
  check_int BENCH_PEERS "$BENCH_PEERS" 1
  check_int BENCH_CONNS "$BENCH_CONNS" 1
  check_int BENCH_DURATION "$BENCH_DURATION" 1
  check_int BENCH_SEED "$BENCH_SEED" 0
  [[ $BENCH_DB =~ ^[A-Za-z0-9_]+$ ]] || die "BENCH_DB must be a plain name"
  [[ -z $BENCH_BODY_BYTES ]] || check_int BENCH_BODY_BYTES "$BENCH_BODY_BYTES" 1
  command -v python3 >/dev/null || die "python3 is needed"
  [[ $BENCH_RELOAD == 1 ]] && PROG=bench-reload

  local name=''
  [[ $BENCH_RELOAD == 1 ]] && name=reload
  start_run "$name" cleanup
  TOKEN=bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')

  phase build build_bench
  phase "database" ensure_db
  ensure_wrk
  if [[ $BENCH_RELOAD == 1 ]]; then
    phase "dataset ($BENCH_USERS users, $BENCH_TORRENTS torrents)" make_dataset
    # The first run also leaves the peer cache the second start-up reads.
    tracker_run noreload 3600 "$RUN_DIR"
    tracker_run reload 2 "$RUN_DIR"
    summary_reload | tee "$RUN_DIR/summary.txt"
  else
    phase "dataset ($BENCH_USERS users, $BENCH_TORRENTS torrents)" generate_dataset
    # The same rows, reloaded, for each run; each run's files in its own
    # directory (no peer cache or journal from one start reaches the other).
    # Fixed order: without the journal, then with it (the run the baseline is
    # paced at and the summary's main lines are from).
    phase "load dataset [nojournal]" prepare_db nojournal off
    tracker_run nojournal "$DATABASE_RELOAD" "$RUN_DIR/nojournal" off
    restore_commits
    phase "load dataset [main]" prepare_db main on
    tracker_run main "$DATABASE_RELOAD" "$RUN_DIR/main" on
    rm -rf "$RUN_DIR/dataset"
    if [[ -n $MARIADB_PID ]]; then
      phase "database reads (reload, purge) on the journal run's rows" reads
    else
      say "MariaDB is not a local process: the reads are not measured"
    fi
    phase "baseline runs, 2 × ${BENCH_DURATION} s" baseline_run
    summary_default | tee "$RUN_DIR/summary.txt"
  fi
  print_phases | tee -a "$RUN_DIR/summary.txt"
  printf '%s: full output in %s\n' "$PROG" "${RUN_DIR#"$PWD"/}"
}

main "$@"
