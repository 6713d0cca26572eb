#!/usr/bin/env bash
# tests/run.sh: the whole test suite from nothing.
#
# Installs what the tests need, builds (cached outside the clone) and starts the test world, runs
# every test of the workspace with the world REQUIRED (a test that needs it fails instead of
# skipping), then stops the world and checks that nothing it started is left.
# KEEP_WORLD=1 leaves the world running afterwards (faster reruns while developing).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
say() { printf '[tests %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }

say "build dependencies of the workspace (OpenSSL headers for git2)"
bash tests/gitops-deps.sh

say "test world: Kubernetes half (API servers, Cluster API, Flux, sealed-secrets, git, faults)"
bash tests/world/ci-up.sh
if [ -f tests/world/ci-up-cloud.sh ]; then
  say "test world: Docker, OpenStack, CAPO"
  bash tests/world/ci-up-cloud.sh
fi
bash tests/world/world.sh status

finish() {
  rc=$?
  if [ "${KEEP_WORLD:-0}" != 1 ]; then
    say "stopping the test world (and the move tests' second world, if they started it)"
    bash crates/kube-ops/tests/move-world.sh down >/dev/null 2>&1 || true
    bash tests/world/check-down.sh || rc=1
  fi
  say "done (exit $rc)"
  exit $rc
}
trap finish EXIT

say "cargo test --workspace (world required)"
WORLD_REQUIRED=1 cargo test --workspace --all-targets
