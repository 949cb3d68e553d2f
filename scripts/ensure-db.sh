#!/usr/bin/env bash
# Make sure a MariaDB answers, for `make test` and `make run`.
#
#   scripts/ensure-db.sh          find or start a server, print its URL
#   scripts/ensure-db.sh --stop   stop the private server, if it runs
#
# Target: $DATABASE_URL (mysql://USER[:PASS]@HOST[:PORT][/DB][?socket=PATH]),
# else mysql://root@127.0.0.1:3306. If nothing usable answers there, a private
# mariadbd is started (or reused) in $REPO/.data/mariadb on 127.0.0.1:33306,
# root without password; MariaDB is installed with apt-get first if missing and
# we are root.
#
# stdout: exactly one line, DATABASE_URL=<normalized URL>, and only on success.
# stderr: everything else, prefixed with "ensure-db: ". Exit 1 on failure.
set -euo pipefail

PROG=ensure-db
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=db-lib.sh
. "$REPO/scripts/db-lib.sh"
# shellcheck source-path=SCRIPTDIR source=apt-lib.sh
. "$REPO/scripts/apt-lib.sh"

DEFAULT_URL=mysql://root@127.0.0.1:3306
PRIVATE_PORT=33306
PRIVATE_URL=mysql://root@127.0.0.1:$PRIVATE_PORT
DATADIR=$REPO/.data/mariadb
PIDFILE=$DATADIR/mariadbd.pid
LOGFILE=$DATADIR/mariadbd.log
INIT_MARK=$DATADIR/.initialized
START_TIMEOUT=30

# A unix socket path must fit in sun_path (108 bytes); a deep checkout gets one
# under /tmp instead.
SOCKET=$DATADIR/mysqld.sock
if ((${#SOCKET} > 100)); then
  SOCKET=${TMPDIR:-/tmp}/chihaya-rs-mariadb-$(id -u)-$(printf '%s' "$REPO" | cksum | cut -d' ' -f1).sock
fi

# answers : does the parsed URL accept `SELECT 1`? Sets PROBE_ERROR otherwise.
answers() {
  PROBE_ERROR=$(db_client -N -e 'SELECT 1' 2>&1 >/dev/null) && return 0
  PROBE_ERROR=${PROBE_ERROR//$'\n'/ }
  return 1
}

# pid_alive PID : is that process still there?
pid_alive() {
  [[ -n $1 ]] && kill -0 "$1" 2>/dev/null
}

# private_pid : pid of the running private mariadbd, or nothing. A stale pid
# file whose pid now belongs to another program does not count.
private_pid() {
  local pid
  pid=$( ([[ -s $PIDFILE ]] && tr -dc 0-9 <"$PIDFILE") || true)
  pid_alive "$pid" || return 0
  if [[ -r /proc/$pid/cmdline ]] &&
    ! tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "--datadir=$DATADIR"; then
    return 0
  fi
  printf '%s' "$pid"
}

stop_private() {
  local pid i
  pid=$(private_pid)
  if [[ -z $pid ]]; then
    say "no private mariadbd running (no live pid in ${PIDFILE#"$REPO"/})"
    return 0
  fi
  say "stopping the private mariadbd (pid $pid)"
  kill -TERM "$pid"
  for ((i = 0; i < 120; i++)); do
    pid_alive "$pid" || {
      say "stopped"
      return 0
    }
    sleep 0.5
  done
  die "mariadbd (pid $pid) is still running after 60 s, see ${LOGFILE#"$REPO"/}"
}

# find_server_tools : set MARIADBD and INSTALL_DB, installing MariaDB if we may.
find_server_tools() {
  local tries
  for tries in 1 2; do
    MARIADBD=$(PATH=$PATH:/usr/sbin:/usr/local/sbin command -v mariadbd || PATH=$PATH:/usr/sbin:/usr/local/sbin command -v mysqld || true)
    INSTALL_DB=$(PATH=$PATH:/usr/sbin command -v mariadb-install-db || PATH=$PATH:/usr/sbin command -v mysql_install_db || true)
    find_client || true
    if [[ -n $MARIADBD && -n $INSTALL_DB && -n $MARIADB_CLIENT ]]; then
      return 0
    fi
    ((tries == 1)) || break
    if ! can_apt; then
      die "MariaDB is not installed (need mariadbd, mariadb-install-db and mariadb)." \
        "Install it, e.g. 'sudo apt-get install mariadb-server mariadb-client'," \
        "or set DATABASE_URL to a running server."
    fi
    say "MariaDB server not found"
    apt_install mariadb-server mariadb-client || die "could not install MariaDB with apt-get"
  done
  die "MariaDB was installed but mariadbd or mariadb-install-db is still not found"
}

# wait_private PID : wait until the private server answers (PID may be empty).
wait_private() {
  local pid=$1 i
  parse_db_url "$PRIVATE_URL"
  for ((i = 0; i < START_TIMEOUT * 2; i++)); do
    answers && return 0
    if [[ -n $pid ]] && ! pid_alive "$pid"; then
      say "mariadbd exited while starting, last lines of ${LOGFILE#"$REPO"/}:"
      tail -n 20 "$LOGFILE" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.5
  done
  say "the private mariadbd did not answer within ${START_TIMEOUT} s ($PROBE_ERROR)," \
    "last lines of ${LOGFILE#"$REPO"/}:"
  tail -n 20 "$LOGFILE" >&2 2>/dev/null || true
  exit 1
}

# init_datadir : create the system tables once; root gets no password.
init_datadir() {
  [[ -e $INIT_MARK ]] && return 0
  # A datadir without the mark is from an initialisation that did not finish.
  rm -rf "$DATADIR"
  mkdir -p "$DATADIR"
  say "initialising a private MariaDB data directory in ${DATADIR#"$REPO"/}"
  if ! "$INSTALL_DB" --no-defaults --datadir="$DATADIR" --user="$(id -un)" \
    --auth-root-authentication-method=normal --skip-test-db >"$DATADIR/install-db.log" 2>&1; then
    say "mariadb-install-db failed, last lines of its output:"
    tail -n 20 "$DATADIR/install-db.log" >&2 || true
    exit 1
  fi
  touch "$INIT_MARK"
}

start_private() {
  local pid
  find_server_tools
  init_datadir
  # Detached (own session, no inherited stdout or lock) so that neither the
  # caller's $(...) nor a Ctrl-C in make waits for it or reaches it.
  local -a cmd=("$MARIADBD" --no-defaults
    --datadir="$DATADIR" --socket="$SOCKET"
    --port="$PRIVATE_PORT" --bind-address=127.0.0.1
    --pid-file="$PIDFILE" --log-error="$LOGFILE" --user="$(id -un)"
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci
    --max-connections=500)
  if command -v setsid >/dev/null; then
    setsid "${cmd[@]}" </dev/null >>"$LOGFILE" 2>&1 9>&- &
  else
    nohup "${cmd[@]}" </dev/null >>"$LOGFILE" 2>&1 9>&- &
  fi
  pid=$!
  wait_private "$pid"
}

main() {
  case ${1:-} in
    '') ;;
    --stop)
      stop_private
      return 0
      ;;
    -h | --help)
      sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      return 0
      ;;
    *) die "unknown argument '$1' (usage: scripts/ensure-db.sh [--stop])" ;;
  esac

  find_client || true
  local url=${DATABASE_URL:-$DEFAULT_URL}
  parse_db_url "$url" || exit 1

  if [[ -n $MARIADB_CLIENT ]]; then
    if answers; then
      say "MariaDB answers at $(db_target)"
      printf 'DATABASE_URL=%s\n' "$(db_url)"
      return 0
    fi
    case $PROBE_ERROR in
      # 2002/2003/2005/2013: nothing (or nothing MariaDB) listening there.
      'ERROR 2002'* | 'ERROR 2003'* | 'ERROR 2005'* | 'ERROR 2013'*)
        say "no MariaDB at $(db_target) ($PROBE_ERROR)"
        ;;
      *) say "MariaDB at $(db_target) is not usable ($PROBE_ERROR)" ;;
    esac
  else
    say "no mariadb client, cannot check $(db_target)"
  fi

  # The private server: reuse it when it answers or is still starting. The
  # lock keeps two concurrent runs from starting two servers.
  local pid
  mkdir -p "$REPO/.data"
  if command -v flock >/dev/null; then
    exec 9>"$REPO/.data/ensure-db.lock"
    flock 9
  fi
  parse_db_url "$PRIVATE_URL"
  if [[ -n ${MARIADB_CLIENT:-} ]] && answers; then
    say "reusing the private mariadbd in ${DATADIR#"$REPO"/} on 127.0.0.1:$PRIVATE_PORT" \
      "(stop it with: make db-stop)"
  else
    pid=$(private_pid)
    if [[ -n $pid ]]; then
      say "the private mariadbd (pid $pid) is running but not answering yet, waiting"
      find_client || die "no mariadb client found"
      wait_private "$pid"
      say "the private mariadbd in ${DATADIR#"$REPO"/} answers on 127.0.0.1:$PRIVATE_PORT" \
        "(stop it with: make db-stop)"
    else
      start_private
      say "started a private mariadbd in ${DATADIR#"$REPO"/} on 127.0.0.1:$PRIVATE_PORT" \
        "(stop it with: make db-stop)"
    fi
  fi
  printf 'DATABASE_URL=%s\n' "$PRIVATE_URL"
}

main "$@"
