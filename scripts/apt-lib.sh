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

# apt_install_no_start PACKAGE... : apt_install --no-install-recommends, with the
# services the packages' maintainer scripts would start refused: a temporary
# /usr/sbin/policy-rc.d answering 101 ("action not allowed", so invoke-rc.d and
# deb-systemd-invoke start nothing), unless the box already has one. For the tools
# the tests run themselves (prometheus, haproxy), never as services.
apt_install_no_start() {
  local policy=/usr/sbin/policy-rc.d temporary='' status=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && temporary=1
  fi
  apt_install --no-install-recommends "$@" || status=$?
  [[ -n $temporary ]] && rm -f "$policy"
  return "$status"
}
