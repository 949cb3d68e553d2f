# shellcheck shell=bash
# Helpers shared by scripts/ensure-db.sh and scripts/ensure-demo-db.sh: parse a
# DATABASE_URL, run the mariadb client against it, print it back normalized.
# Sourced, not run. The caller sets PROG (message prefix) and `set -euo pipefail`.

# say MESSAGE... : one line on stderr, prefixed with the program name.
say() {
  printf '%s: %s\n' "$PROG" "$*" >&2
}

# die MESSAGE... : say it and exit 1.
die() {
  say "$@"
  exit 1
}

# pct_decode STRING : undo %XX escapes (bytes), leave everything else as is.
pct_decode() {
  local s=${1//\\/\\\\}
  printf '%b' "${s//%/\\x}"
}

# pct_encode STRING : escape every byte outside [A-Za-z0-9._~-] as %XX.
pct_encode() {
  local LC_ALL=C s=$1 out='' c hex i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *)
        printf -v hex '%%%02X' "'$c"
        out+=$hex
        ;;
    esac
  done
  printf '%s' "$out"
}

# parse_db_url URL : split mysql://USER[:PASS]@HOST[:PORT][/DB][?PARAMS] into
#   DB_USER DB_PASS DB_HAS_PASS DB_HOST DB_PORT DB_SOCKET DB_PARAMS
# USER and PASS are percent-decoded; USER defaults to root, HOST to localhost,
# PORT to 3306. DB is ignored (callers pick their own databases). A `socket`
# parameter selects a unix socket instead of TCP; other parameters are kept in
# DB_PARAMS for the normalized URL. Returns 1 (with a message) on a bad URL.
parse_db_url() {
  local url=$1 rest authority userinfo hostport param
  DB_USER=root DB_PASS='' DB_HAS_PASS=0 DB_HOST=localhost DB_PORT=3306
  DB_SOCKET='' DB_PARAMS=''

  case $url in
    mysql://* | mariadb://*) rest=${url#*://} ;;
    *)
      say "DATABASE_URL must look like mysql://USER[:PASS]@HOST[:PORT] (got '$url')"
      return 1
      ;;
  esac

  if [[ $rest == *\?* ]]; then
    DB_PARAMS=${rest#*\?}
    rest=${rest%%\?*}
  fi
  authority=${rest%%/*}

  # The user info ends at the last '@'; the password starts after its first ':'.
  if [[ $authority == *@* ]]; then
    userinfo=${authority%@*}
    hostport=${authority##*@}
    if [[ $userinfo == *:* ]]; then
      DB_PASS=$(pct_decode "${userinfo#*:}")
      DB_HAS_PASS=1
      userinfo=${userinfo%%:*}
    fi
    [[ -n $userinfo ]] && DB_USER=$(pct_decode "$userinfo")
  else
    hostport=$authority
  fi

  if [[ $hostport == \[* ]]; then
    # [v6] or [v6]:port
    DB_HOST=${hostport%%]*}
    DB_HOST=${DB_HOST#\[}
    hostport=${hostport#*]}
    case $hostport in
      '') ;;
      :*) DB_PORT=${hostport#:} ;;
      *)
        say "bad host in DATABASE_URL '$url'"
        return 1
        ;;
    esac
  elif [[ $hostport == *:* ]]; then
    DB_HOST=${hostport%%:*}
    DB_PORT=${hostport#*:}
  elif [[ -n $hostport ]]; then
    DB_HOST=$hostport
  fi
  if [[ -z $DB_HOST || ! $DB_PORT =~ ^[0-9]{1,5}$ ]] || ((10#$DB_PORT < 1 || 10#$DB_PORT > 65535)); then
    say "bad host or port in DATABASE_URL '$url'"
    return 1
  fi
  DB_PORT=$((10#$DB_PORT))

  local -a params=()
  IFS='&' read -r -a params <<<"$DB_PARAMS"
  for param in "${params[@]}"; do
    case $param in
      socket=*) DB_SOCKET=$(pct_decode "${param#socket=}") ;;
    esac
  done
  return 0
}

# db_url : the parsed URL, normalized: mysql://USER[:PASS]@HOST:PORT, or
# mysql://USER[:PASS]@HOST/?socket=... for a socket; parameters kept as given.
db_url() {
  local host=$DB_HOST auth
  auth=$(pct_encode "$DB_USER")
  if ((DB_HAS_PASS)); then
    auth+=":$(pct_encode "$DB_PASS")"
  fi
  [[ $host == *:* ]] && host="[$host]"
  if [[ -n $DB_SOCKET ]]; then
    printf 'mysql://%s@%s/?%s\n' "$auth" "$host" "$DB_PARAMS"
  elif [[ -n $DB_PARAMS ]]; then
    printf 'mysql://%s@%s:%s/?%s\n' "$auth" "$host" "$DB_PORT" "$DB_PARAMS"
  else
    printf 'mysql://%s@%s:%s\n' "$auth" "$host" "$DB_PORT"
  fi
}

# db_target : human-readable target for messages.
db_target() {
  if [[ -n $DB_SOCKET ]]; then
    printf '%s@unix(%s)' "$DB_USER" "$DB_SOCKET"
  elif [[ $DB_HOST == *:* ]]; then
    printf '%s@[%s]:%s' "$DB_USER" "$DB_HOST" "$DB_PORT"
  else
    printf '%s@%s:%s' "$DB_USER" "$DB_HOST" "$DB_PORT"
  fi
}

# find_client : set MARIADB_CLIENT to the mariadb (or mysql) command, or return 1.
find_client() {
  MARIADB_CLIENT=$(command -v mariadb || command -v mysql || true)
  [[ -n $MARIADB_CLIENT ]]
}

# db_client ARGS... : run the client against the parsed URL. Option files are
# not read (the URL says everything); the password goes through MYSQL_PWD so it
# shows neither in `ps` nor in a warning.
db_client() {
  local -a conn=(--no-defaults --connect-timeout="${DB_CONNECT_TIMEOUT:-3}" -u "$DB_USER")
  if [[ -n $DB_SOCKET ]]; then
    conn+=(--protocol=socket --socket="$DB_SOCKET")
  else
    conn+=(--protocol=tcp -h "$DB_HOST" -P "$DB_PORT")
  fi
  if ((DB_HAS_PASS)); then
    MYSQL_PWD=$DB_PASS "$MARIADB_CLIENT" "${conn[@]}" "$@"
  else
    env -u MYSQL_PWD "$MARIADB_CLIENT" "${conn[@]}" "$@"
  fi
}
