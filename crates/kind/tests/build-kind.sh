#!/bin/sh
# Builds the real `kind` CLI (the version pinned in tests/world/versions.env) into the test world's
# binary cache ($WORLD_BIN, default /var/cache/manage-world/bin) with `go install`, so the tests
# in this directory can show that `kind get clusters` and `kind delete cluster` see our clusters.
# Nothing is committed; rerunning is a no-op when the binary of that version is there.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../../tests/world/versions.env"
bin=${WORLD_BIN:-/var/cache/manage-world/bin}
mkdir -p "$bin"
if [ -x "$bin/kind" ] && "$bin/kind" version 2>/dev/null | grep -q "kind $KIND_VERSION "; then
  echo "kind $KIND_VERSION already in $bin"; exit 0
fi
GOBIN=$bin CGO_ENABLED=0 go install -trimpath "sigs.k8s.io/kind@$KIND_VERSION"
"$bin/kind" version
