#!/usr/bin/env bash
# ci-up.sh: brings up the Kubernetes half of the test world from nothing on a fresh Debian 12
# machine (idempotent): Debian packages it needs, then `world.sh up` of the parts kube,
# controllers, git and faults (building every binary from its Go module on a cold cache).
# Go must be installed; its caches stay in their default places (~/go, ~/.cache/go-build).
set -Eeuo pipefail
WORLD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} # sealed-secrets' go.mod asks for go 1.26.2

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/lib/git-core/git-http-backend ] || need+=(git)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v unshare >/dev/null || need+=(util-linux)
command -v ssh-keyscan >/dev/null || need+=(openssh-client)
[ -x /usr/bin/python3 ] || need+=(python3)
/usr/bin/python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
if [ ${#need[@]} -gt 0 ]; then
  echo "[ci-up] apt-get install ${need[*]}" >&2
  # keep the package's own sshd (port 22) from being started: the world runs its own
  made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=900 --no-install-recommends "${need[@]}"
  [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
fi
command -v go >/dev/null || { echo "[ci-up] go is not installed" >&2; exit 1; }

t0=$(date +%s)
"$WORLD_DIR/world.sh" build kube controllers git faults
t1=$(date +%s)
"$WORLD_DIR/world.sh" up kube controllers git faults
echo "[ci-up] build $((t1 - t0))s, up $(( $(date +%s) - t1 ))s; env: $("$WORLD_DIR/world.sh" env >/dev/null && echo "${MANAGE_WORLD_STATE:-/var/tmp/manage-world}/world.env")" >&2
