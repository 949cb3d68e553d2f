# shellcheck shell=bash
# Installing Debian packages from the developer scripts (ensure-db, ensure-clients,
# bench/run.sh). Sourced, not run; the caller provides `say` (scripts/db-lib.sh).

# can_apt : may we install packages (root, and apt-get exists)?
can_apt() {
  [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null
}

# apt_install PACKAGE... : apt-get install them; if that fails (stale or missing
# package lists on a fresh box), apt-get update and try once more.
apt_install() {
  say "installing with apt-get: $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2 && return 0
  say "apt-get install failed, running apt-get update and trying once more"
  apt-get update >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2
}
