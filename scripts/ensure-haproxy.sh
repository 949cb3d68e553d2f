#!/usr/bin/env bash
# Make sure haproxy (Debian package haproxy, 2.6 on bookworm) is installed, for
# tests/scale_out.rs under `make test`: the test runs contrib/haproxy/chihaya.cfg
# in a haproxy of its own, in the foreground, in front of two trackers.
#
# The package's maintainer scripts would start and enable a haproxy service of
# their own (with /etc/haproxy/haproxy.cfg). The test needs none, so while
# apt-get runs, service starts are refused through /usr/sbin/policy-rc.d (a
# temporary one, unless the box already has one), and a daemon that still came
# up is stopped. Never fails: whether haproxy is there is the test's business (it
# is skipped without it, and fails when CI is set).
#
# stderr only, prefixed with "ensure-haproxy: ".
set -uo pipefail

PROG=ensure-haproxy
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=db-lib.sh
. "$REPO/scripts/db-lib.sh"
# shellcheck source-path=SCRIPTDIR source=apt-lib.sh
. "$REPO/scripts/apt-lib.sh"

# The packaged service's config: how its processes are told from the test's.
PACKAGED_CONFIG=/etc/haproxy/haproxy.cfg

# Debian puts it in /usr/sbin, which a user's PATH may lack (the test looks there too).
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] && exit 0
if ! can_apt; then
  say "not installed: haproxy (not root or no apt-get); the scale-out test will be skipped." \
    "Install it with 'sudo apt-get install haproxy' to run it."
  exit 0
fi

say "the scale-out test needs haproxy"
apt_install_no_start haproxy ||
  say "apt-get could not install it; the scale-out test will be skipped"

# Whatever started anyway: stop the processes running the packaged config (its
# master runs as root, its workers as haproxy); the test's own haproxy runs
# another file and is never touched.
if command -v pgrep >/dev/null; then
  for pid in $(pgrep -x haproxy 2>/dev/null); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$PACKAGED_CONFIG"; then
      say "stopping the haproxy service the package started (pid $pid)"
      kill "$pid" 2>/dev/null || true
    fi
  done
fi
exit 0
