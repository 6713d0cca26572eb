#!/usr/bin/env bash
# ci-up-cloud.sh [--install-only]
#
# Brings up the Docker, OpenStack and CAPO half of the test world from nothing (a fresh clone on a
# fresh machine), idempotently:
#   1. apt-get update + install Debian's docker.io and busybox-static (skipped when present);
#   2. installs the local OpenStack's packages (tests/world/openstack/up.sh with
#      OSL_INSTALL_ONLY=1; skipped when present);
#   3. unless --install-only: `world.sh up docker openstack capo` (builds CAPO from its Go module, the
#      node image and the stand-in, starts dockerd, OpenStack, CAPO and the stand-in).
# The kube and controllers parts (API servers, CAPI managers) must be up first: `world.sh up` of the
# whole world does everything in order; this script is the cloud half for CI and for a quick
# re-run. Logs: $WORLD_STATE/logs (default /var/tmp/manage-world/logs).
set -Eeuo pipefail
WORLD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T0=$(date +%s)
say() { printf '[ci-up-cloud %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=900 -y -q --no-install-recommends)
if ! command -v dockerd >/dev/null || ! dpkg -s busybox-static >/dev/null 2>&1; then
  say "installing docker.io and busybox-static"
  apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
  apt-get install "${apt_opts[@]}" docker.io busybox-static >/dev/null
  say "docker.io and busybox-static installed"
fi

# shellcheck source=lib/common.sh
. "$WORLD_DIR/lib/common.sh"
tools=$(openstack_tools)
if ! [ -x /usr/bin/openstack ] || ! [ -x /usr/bin/octavia-worker ] || ! [ -x /usr/bin/nova-api ]; then
  say "installing the local OpenStack's packages (about 2-4 min)"
  OSL_INSTALL_ONLY=1 bash "$tools/up.sh" >"$WORLD_STATE/logs/openstack-install.log" 2>&1 \
    || { tail -n 30 "$WORLD_STATE/logs/openstack-install.log" >&2; exit 1; }
  say "OpenStack packages installed"
fi
[ "${1:-}" = --install-only ] && exit 0

"$WORLD_DIR/world.sh" up docker openstack capo
say "docker, openstack and capo up"
