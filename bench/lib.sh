# shellcheck shell=bash
# Set-up steps shared by the bench harnesses (bench/run.sh, bench/hostile.sh,
# bench/push.sh, bench/scale.sh, bench/db.sh): knobs, run directory, release build,
# MariaDB, wrk, haproxy, the bench dataset, the Python side. Sourced, not run; it
# sources scripts/db-lib.sh (say, die, db_client, ...) and scripts/apt-lib.sh. The
# caller sets PROG, REPO and BENCH and runs under `set -euo pipefail`; the functions
# read the knobs (dataset_knobs) and CARGO.

# shellcheck source-path=SCRIPTDIR source=../scripts/db-lib.sh
. "$REPO/scripts/db-lib.sh"
# shellcheck source-path=SCRIPTDIR source=../scripts/apt-lib.sh
. "$REPO/scripts/apt-lib.sh"

# What the functions below set: the run directory (start_run), the release
# directory (build), the tracker under test (tracker_binary, given_binary), the
# bench database's DSN and the local server's pid (ensure_db).
RUN_DIR=''
BIN=''
TRACKER_BIN=''
DSN=''
MARIADB_PID=''

# dataset_knobs : the defaults of the knobs run.sh, hostile.sh, push.sh and
# scale.sh share (make bench's): the dataset (BENCH_USERS, BENCH_TORRENTS,
# BENCH_SEED, BENCH_DB), BENCH_BINARY, BENCH_KEEP, CARGO. A harness with another
# default for BENCH_TORRENTS sets it before.
dataset_knobs() {
  BENCH_USERS=${BENCH_USERS:-10000}
  BENCH_TORRENTS=${BENCH_TORRENTS:-100000}
  BENCH_SEED=${BENCH_SEED:-1}
  BENCH_DB=${BENCH_DB:-chihaya_bench}
  BENCH_BINARY=${BENCH_BINARY:-}
  BENCH_KEEP=${BENCH_KEEP:-0}
  CARGO=${CARGO:-cargo}
}

# check_int NAME VALUE MIN : die unless VALUE is an integer >= MIN.
check_int() {
  if [[ ! $2 =~ ^[0-9]+$ ]] || ((10#$2 < $3)); then
    die "$1 must be an integer >= $3 (got '$2')"
  fi
}

# check_dataset_knobs : the dataset knobs of hostile.sh, push.sh and scale.sh
# (at least 100 users and 100 torrents: bench/common.py wants them), and python3.
check_dataset_knobs() {
  check_int BENCH_USERS "$BENCH_USERS" 100
  check_int BENCH_TORRENTS "$BENCH_TORRENTS" 100
  check_int BENCH_SEED "$BENCH_SEED" 0
  [[ $BENCH_DB =~ ^[A-Za-z0-9_]+$ ]] || die "BENCH_DB must be a plain name"
  command -v python3 >/dev/null || die "python3 is needed"
}

# start_run NAME [CLEANUP] : RUN_DIR=$BENCH/runs/<timestamp>-NAME (<timestamp>
# alone when NAME is empty), and the traps: CLEANUP (default cleanup_run) at exit,
# also on error or Ctrl-C.
start_run() {
  local cleanup=${2:-cleanup_run}
  RUN_DIR=$BENCH/runs/$(date +%Y%m%d-%H%M%S)${1:+-$1}
  mkdir -p "$RUN_DIR"
  # shellcheck disable=SC2064 # the function's name, now
  trap "$cleanup" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  say "run directory $RUN_DIR"
}

# cleanup_run : the exit trap of hostile.sh, push.sh and scale.sh. Removes the
# dataset files and, unless BENCH_KEEP=1, the trackers' peer caches and journals
# (a few MB to tens of MB each), in RUN_DIR/<tracker>/ or RUN_DIR/<phase>/<tracker>/.
cleanup_run() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $RUN_DIR ]]; then
    rm -rf "$RUN_DIR/dataset" "$RUN_DIR/dataset.txt"
    [[ $BENCH_KEEP == 1 ]] || rm -rf "$RUN_DIR"/*/peer-cache.bin* "$RUN_DIR"/*/journal \
      "$RUN_DIR"/*/*/peer-cache.bin* "$RUN_DIR"/*/*/journal
    ((rc == 0)) || say "FAILED (exit $rc); logs are in $RUN_DIR"
  fi
  exit "$rc"
}

# build [CARGO_BUILD_ARG...] : release build of the binaries (plus the extra
# arguments, e.g. --example baseline); sets BIN to the release directory.
# shellcheck disable=SC2120 # run.sh passes its examples
build() {
  (cd "$REPO" && "$CARGO" build --release --bins "$@")
  BIN=${CARGO_TARGET_DIR:-target}
  [[ $BIN == /* ]] || BIN=$REPO/$BIN
  BIN=$BIN/release
  [[ -x $BIN/chihaya ]] || die "built binaries not found in $BIN"
}

# given_binary : TRACKER_BIN=BENCH_BINARY as an absolute path; dies unless it is
# an executable.
given_binary() {
  [[ -x $BENCH_BINARY ]] || die "BENCH_BINARY=$BENCH_BINARY is not an executable"
  TRACKER_BIN=$(cd "$(dirname "$BENCH_BINARY")" && pwd)/$(basename "$BENCH_BINARY")
}

# tracker_binary WHAT : TRACKER_BIN, the tracker under test: BENCH_BINARY, not
# built (says "not building: WHAT <path>"), or this checkout's release build.
tracker_binary() {
  if [[ -n $BENCH_BINARY ]]; then
    given_binary
    say "not building: $1 $TRACKER_BIN"
  else
    # shellcheck disable=SC2119 # build's arguments are extra cargo arguments: none here
    build
    TRACKER_BIN=$BIN/chihaya
  fi
}

# ensure_db : a MariaDB that answers; sets the DB_* variables, DSN, MARIADB_PID.
ensure_db() {
  local out
  out=$("$REPO/scripts/ensure-db.sh") || die "no usable MariaDB (see above)"
  parse_db_url "${out#DATABASE_URL=}" || exit 1
  find_client || die "no mariadb (or mysql) client found"
  local auth=$DB_USER
  ((DB_HAS_PASS)) && auth+=":$DB_PASS"
  if [[ -n $DB_SOCKET ]]; then
    DSN="$auth@unix($DB_SOCKET)/$BENCH_DB"
  elif [[ $DB_HOST == *:* ]]; then
    DSN="$auth@tcp([$DB_HOST]:$DB_PORT)/$BENCH_DB"
  else
    DSN="$auth@tcp($DB_HOST:$DB_PORT)/$BENCH_DB"
  fi
  MARIADB_PID=$(mariadb_pid)
  if [[ -n $MARIADB_PID ]]; then
    say "MariaDB server process: pid $MARIADB_PID"
  else
    say "MariaDB server process not found on this host: its CPU is not measured"
  fi
}

is_mariadbd() {
  [[ -n $1 && -r /proc/$1/comm ]] && [[ $(<"/proc/$1/comm") =~ ^(mariadbd|mysqld)$ ]]
}

# mariadb_pid : pid of the local server we talk to, or nothing.
mariadb_pid() {
  local pid='' file
  if [[ -z $DB_SOCKET ]]; then
    case $DB_HOST in
      127.* | localhost | ::1) ;;
      *) return 0 ;;
    esac
  fi
  file=$(db_client -N -B -e 'SELECT @@pid_file' 2>/dev/null) || true
  [[ -n $file && -r $file ]] && pid=$(tr -dc 0-9 <"$file")
  if ! is_mariadbd "$pid" && [[ -z $DB_SOCKET ]] && command -v ss >/dev/null; then
    pid=$(ss -ltnpH "sport = :$DB_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2) || true
  fi
  if is_mariadbd "$pid"; then printf '%s' "$pid"; fi
}

ensure_wrk() {
  command -v wrk >/dev/null && return 0
  if can_apt; then
    say "wrk not found"
    apt_install wrk || die "could not install wrk with apt-get"
    command -v wrk >/dev/null || die "wrk still not found after apt-get install"
  else
    die "wrk is not installed and we cannot install it (not root or no apt-get):" \
      "install it (e.g. 'sudo apt-get install wrk') and run make bench again"
  fi
}

# ensure_haproxy : haproxy (Debian package haproxy, 2.6 on bookworm) for
# make bench-scale, which runs its own in the foreground: installed as for the tests
# (scripts/ensure-haproxy.sh: the package's own service is kept from starting).
ensure_haproxy() {
  command -v haproxy >/dev/null && return 0
  if ! can_apt; then
    die "haproxy is not installed and we cannot install it (not root or no apt-get):" \
      "install it (e.g. 'sudo apt-get install haproxy') and run make bench-scale again"
  fi
  say "haproxy not found"
  "$REPO/scripts/ensure-haproxy.sh"
  command -v haproxy >/dev/null || die "haproxy still not found after apt-get install"
}

# generate_dataset : bench/dataset.py writes the rows into $RUN_DIR/dataset and
# the sidecar to $RUN_DIR/dataset.txt (the same seed gives the same rows).
generate_dataset() {
  python3 "$BENCH/dataset.py" --dir "$RUN_DIR/dataset" --users "$BENCH_USERS" \
    --torrents "$BENCH_TORRENTS" --seed "$BENCH_SEED" --sidecar "$RUN_DIR/dataset.txt"
}

# load_dataset : drop and recreate $BENCH_DB with the schema and the generated rows.
load_dataset() {
  local dir=$RUN_DIR/dataset n
  say "loading it into database $BENCH_DB on $(db_target) (dropped and recreated)"
  db_client -e "DROP DATABASE IF EXISTS \`$BENCH_DB\`;
    CREATE DATABASE \`$BENCH_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci" ||
    die "cannot recreate database $BENCH_DB"
  cat "$REPO/database/schema.sql" "$dir/load.sql" |
    db_client --local-infile=1 "$BENCH_DB" || die "loading the dataset failed"
  n=$(db_client -N -B -e "SELECT (SELECT COUNT(*) FROM users_main), (SELECT COUNT(*) FROM torrents)" "$BENCH_DB")
  [[ $n == "$BENCH_USERS"$'\t'"$BENCH_TORRENTS" ]] ||
    die "dataset incomplete: users, torrents = ${n//$'\t'/, } (want $BENCH_USERS, $BENCH_TORRENTS)"
}

# make_dataset : generate the dataset and (re)load it, always.
make_dataset() {
  generate_dataset
  load_dataset
  rm -rf "$RUN_DIR/dataset"
}

# dataset_matches : does $BENCH_DB hold the rows the sidecar describes? Compares
# the counts, the first and last passkey and info_hash, and the approved clients,
# and wants the table chihaya_commits (make bench drops it for its run without
# the journal; a run stopped then leaves it missing).
dataset_matches() {
  local side=$RUN_DIR/dataset.txt want got
  want=$(awk -v u="$BENCH_USERS" -v t="$BENCH_TORRENTS" '
    /^\[/ { sec = $0; i = 0; next }
    sec == "[clients]" { c++ }
    sec == "[users]" { i++; if (i == 1) u1 = $0; if (i == u) un = $0 }
    sec == "[torrents]" { i++; if (i == 1) t1 = $0; if (i == t) tn = $0 }
    END { printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t1", u, t, u1, un, t1, tn, c }' "$side")
  got=$(db_client -N -B -e "SELECT (SELECT COUNT(*) FROM users_main), (SELECT COUNT(*) FROM torrents),
      (SELECT torrent_pass FROM users_main WHERE ID = 1),
      (SELECT torrent_pass FROM users_main WHERE ID = $BENCH_USERS),
      (SELECT LOWER(HEX(info_hash)) FROM torrents WHERE ID = 1),
      (SELECT LOWER(HEX(info_hash)) FROM torrents WHERE ID = $BENCH_TORRENTS),
      (SELECT COUNT(*) FROM approved_clients WHERE archived = 0),
      (SELECT COUNT(*) FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'chihaya_commits')" "$BENCH_DB" 2>/dev/null) || return 1
  [[ $got == "$want" ]]
}

# ensure_dataset : generate the sidecar; load the dataset only when $BENCH_DB
# does not already hold exactly those rows (a previous make bench or run).
ensure_dataset() {
  generate_dataset
  if dataset_matches; then
    say "database $BENCH_DB already holds this dataset, not reloaded"
  else
    load_dataset
  fi
  rm -rf "$RUN_DIR/dataset"
}

# timed_dataset : ensure_dataset, and say how long it took.
timed_dataset() {
  local t0=$SECONDS
  ensure_dataset
  say "dataset ready after $((SECONDS - t0)) s"
}

# bench_py SCRIPT ARG... : python3 bench/SCRIPT against TRACKER_BIN, RUN_DIR, the
# dataset's sidecar and the bench database (its DSN for the trackers, and the
# arguments of its own mariadb client, which reads the password from the
# environment), then ARG... Not exec: the exit trap removes the sidecar afterwards.
# The script handles Ctrl-C itself (stops its trackers), so this waits for it.
bench_py() {
  local script=$1
  shift
  local -a db=(--mysql "$MARIADB_CLIENT" --db-user "$DB_USER" --db-name "$BENCH_DB")
  if [[ -n $DB_SOCKET ]]; then
    db+=(--db-socket "$DB_SOCKET")
  else
    db+=(--db-host "$DB_HOST" --db-port "$DB_PORT")
  fi
  ((DB_HAS_PASS)) && export MYSQL_PWD=$DB_PASS
  python3 "$BENCH/$script" --binary "$TRACKER_BIN" --run-dir "$RUN_DIR" \
    --sidecar "$RUN_DIR/dataset.txt" --dsn "$DSN" "${db[@]}" "$@"
}
