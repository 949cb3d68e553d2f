#!/usr/bin/env bash
# Make sure the outside programs of the tests are installed, for `make test`:
# the BitTorrent clients of tests/real_clients.rs — transmission-daemon,
# transmission-remote (Debian package transmission-cli) and aria2c (package
# aria2) — and the tools of tests/service_unit.rs — systemd-analyze and
# systemd-sysusers (package systemd; installing it does not make systemd run)
# and strace. Missing ones are installed with apt-get when we are root;
# otherwise this says what is missing, and the tests say they are skipped.
# Never fails: whether the programs are there is the tests' business.
#
# stderr only, prefixed with "ensure-clients: ".
set -uo pipefail

PROG=ensure-clients
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=db-lib.sh
. "$REPO/scripts/db-lib.sh"
# shellcheck source-path=SCRIPTDIR source=apt-lib.sh
. "$REPO/scripts/apt-lib.sh"

# program:package pairs
CLIENTS=(transmission-daemon:transmission-daemon transmission-remote:transmission-cli aria2c:aria2
  systemd-analyze:systemd systemd-sysusers:systemd strace:strace)

missing() {
  local pair
  for pair in "${CLIENTS[@]}"; do
    command -v "${pair%%:*}" >/dev/null || printf '%s\n' "${pair#*:}"
  done | sort -u
}

mapfile -t packages < <(missing)
((${#packages[@]} == 0)) && exit 0
if ! can_apt; then
  say "not installed: ${packages[*]} (not root or no apt-get); the tests that need them will be skipped." \
    "Install them with 'sudo apt-get install ${packages[*]}' to run it."
  exit 0
fi
say "the tests need ${packages[*]}"
apt_install "${packages[@]}" || say "apt-get could not install them; the tests that need them will be skipped"
exit 0
