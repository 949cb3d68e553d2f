#!/usr/bin/env bash
# Make sure prometheus and promtool (Debian package prometheus) are installed, for
# tests/prometheus.rs under `make test`: the test runs its own prometheus against the
# tracker and checks contrib/prometheus/alerts.yml with promtool.
#
# The package's maintainer scripts would start a prometheus service of their own.
# The test needs none, so while apt-get runs, service starts are refused through
# /usr/sbin/policy-rc.d (a temporary one, unless the box already has one), and a
# daemon that still came up is stopped. Never fails: whether prometheus is there is
# the test's business (it is skipped without it, and fails when CI is set).
#
# stderr only, prefixed with "ensure-prometheus: ".
set -uo pipefail

PROG=ensure-prometheus
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=db-lib.sh
. "$REPO/scripts/db-lib.sh"
# shellcheck source-path=SCRIPTDIR source=apt-lib.sh
. "$REPO/scripts/apt-lib.sh"

command -v prometheus >/dev/null && command -v promtool >/dev/null && exit 0
if ! can_apt; then
  say "not installed: prometheus (not root or no apt-get); the Prometheus test will be skipped." \
    "Install it with 'sudo apt-get install prometheus' to run it."
  exit 0
fi

say "the Prometheus test needs prometheus"
# Recommends would bring prometheus-node-exporter and its own service along.
apt_install_no_start prometheus ||
  say "apt-get could not install it; the Prometheus test will be skipped"

# Whatever started anyway (an init script ignoring the policy): stop the package's
# daemon, which runs as the user prometheus; ours run as whoever runs the tests.
if command -v pgrep >/dev/null; then
  for pid in $(pgrep -u prometheus -x prometheus 2>/dev/null); do
    say "stopping the prometheus service the package started (pid $pid)"
    kill "$pid" 2>/dev/null || true
  done
fi
exit 0
