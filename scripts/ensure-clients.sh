#!/usr/bin/env bash
# Make sure the BitTorrent clients of tests/real_clients.rs are installed, for
# `make test`: transmission-daemon, transmission-remote (Debian package
# transmission-cli) and aria2c (package aria2). Missing ones are installed with
# apt-get when we are root; otherwise this says what is missing, and the test
# says it is skipped. Never fails: whether the clients are there is the test's
# business.
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
CLIENTS=(transmission-daemon:transmission-daemon transmission-remote:transmission-cli aria2c:aria2)

missing() {
  local pair
  for pair in "${CLIENTS[@]}"; do
    command -v "${pair%%:*}" >/dev/null || printf '%s\n' "${pair#*:}"
  done | sort -u
}

mapfile -t packages < <(missing)
((${#packages[@]} == 0)) && exit 0
if ! can_apt; then
  say "not installed: ${packages[*]} (not root or no apt-get); the real-client test will be skipped." \
    "Install them with 'sudo apt-get install ${packages[*]}' to run it."
  exit 0
fi
say "the real-client test needs ${packages[*]}"
apt_install "${packages[@]}" || say "apt-get could not install them; the real-client test will be skipped"
exit 0
