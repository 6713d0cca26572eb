# capo.sh: the real Cluster API Provider OpenStack (CAPO) manager, built from its Go module
# (wrapper tests/world/go/capo) at $CAPO_VERSION, run as a process against the world's management
# API server(s) and pointed (by each cluster's identity Secret) at the world's local OpenStack; and
# the world's stand-in for what cannot happen here (no VM boots): crates/world-standin, see
# ../README.md "The booting-node stand-in".
#
#   WORLD_CAPO_SERVERS      servers that run a CAPO manager, its webhooks and the stand-in
#                           (default "mgmt")
#   WORLD_CAPO_CRD_SERVERS  servers that get CAPO's CRDs and clusterctl inventory entry
#                           (default: $WORLD_CAPI_CRD_SERVERS, i.e. every server with CAPI CRDs)
#
# Env for tests: WORLD_CAPO_SERVERS, WORLD_CAPO_VERSION, WORLD_STANDIN.

WORLD_CAPO_SERVERS=${WORLD_CAPO_SERVERS:-mgmt}
WORLD_CAPO_CRD_SERVERS=${WORLD_CAPO_CRD_SERVERS:-${WORLD_CAPI_CRD_SERVERS:-bootstrap mgmt workload}}
CAPO_STATE=$WORLD_STATE/capo
CAPO_MOD=sigs.k8s.io/cluster-api-provider-openstack

capo_build() {
  local v=$CAPO_VERSION maj min p=$CAPO_MOD/version
  maj=${v#v}; maj=${maj%%.*}; min=${v#v*.}; min=${min%%.*}
  world_go_build capo "-s -w -X $p.gitVersion=$v -X $p.gitMajor=$maj -X $p.gitMinor=$min -X $p.gitTreeState=clean" \
    "$CAPO_MOD=capo-manager"
  capo_standin_build
}

# The stand-in is our Rust crate; built (dev profile, sharing the workspace's build with the tests)
# into the shared target dir, copied to $WORLD_BIN.
capo_standin_build() {
  local stamp src
  # stamp: the crate's own files (the workspace's Cargo.lock changes with every other crate)
  src=$(cd "$REPO_ROOT" && cat crates/world-standin/Cargo.toml crates/world-standin/src/*.rs 2>/dev/null | sha256sum | cut -c1-16)
  stamp=$(cat "$WORLD_BIN/.stamp-world-standin" 2>/dev/null || true)
  [ -x "$WORLD_BIN/world-standin" ] && [ "$stamp" = "$src" ] && return 0
  log "building world-standin (cargo build -p world-standin)"
  (cd "$REPO_ROOT" && cargo build -q -p world-standin) >"$WORLD_CACHE/build-world-standin.log" 2>&1 \
    || { tail -n 30 "$WORLD_CACHE/build-world-standin.log" >&2; die "cargo build of world-standin failed"; }
  local target; target=$(cd "$REPO_ROOT" && cargo metadata --format-version 1 --no-deps | /usr/bin/python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')
  install -m 0755 "$target/debug/world-standin" "$WORLD_BIN/world-standin"
  echo "$src" >"$WORLD_BIN/.stamp-world-standin"
}

capo_moddir() { (cd "$WORLD_DIR/go/capo" && go list -m -f '{{.Dir}}' "$CAPO_MOD"); }
capo_orc_moddir() { (cd "$WORLD_DIR/go/capo" && go list -m -f '{{.Dir}}' github.com/k-orc/openstack-resource-controller/v2); }
capo_kubectl() { local s=$1; shift; "$WORLD_BIN/kubectl" --kubeconfig "$KUBE_STATE/$s/admin.kubeconfig" "$@"; }

# CRDs from the module's config/crd/bases with the contract label kustomize adds upstream
# (config/crd/kustomization.yaml); all CAPO CRDs serve one version, so no conversion webhook.
capo_crds_up() {
  local s=$1 mod; mod=$(capo_moddir)
  /usr/bin/python3 "$WORLD_DIR/lib/k8s_manifests.py" "$mod"/config/crd/bases/*.yaml \
    --label cluster.x-k8s.io/v1beta1=v1beta1 --label cluster.x-k8s.io/provider=infrastructure-openstack \
    --label clusterctl.cluster.x-k8s.io= |
    capo_kubectl "$s" apply --server-side --force-conflicts -f - >/dev/null
  # CAPO (since v0.12) watches ORC's Image objects, so ORC's CRDs must exist (from the ORC module
  # version CAPO requires). The ORC controller itself is not run: images are selected by filter.
  /usr/bin/python3 "$WORLD_DIR/lib/k8s_manifests.py" "$(capo_orc_moddir)"/config/crd/bases/*.yaml \
    --label app.kubernetes.io/part-of=orc |
    capo_kubectl "$s" apply --server-side --force-conflicts -f - >/dev/null
  capo_kubectl "$s" wait --for condition=Established --timeout 60s crd -l cluster.x-k8s.io/provider=infrastructure-openstack >/dev/null
  capo_kubectl "$s" wait --for condition=Established --timeout 60s crd -l app.kubernetes.io/part-of=orc >/dev/null
  # clusterctl inventory entry, as `clusterctl init --infrastructure openstack` leaves it
  capo_kubectl "$s" create namespace capo-system --dry-run=client -o yaml | capo_kubectl "$s" apply -f - >/dev/null
  capo_kubectl "$s" apply -f - >/dev/null <<EOF
apiVersion: clusterctl.cluster.x-k8s.io/v1alpha3
kind: Provider
metadata:
  name: infrastructure-openstack
  namespace: capo-system
  labels:
    clusterctl.cluster.x-k8s.io: ""
    clusterctl.cluster.x-k8s.io/core: inventory
    cluster.x-k8s.io/provider: infrastructure-openstack
providerName: openstack
type: InfrastructureProvider
version: $CAPO_VERSION
EOF
}

# Validating webhooks from config/webhook/manifests.yaml, served by the local manager.
capo_webhooks_up() {
  local s=$1 mod; mod=$(capo_moddir)
  /usr/bin/python3 "$WORLD_DIR/lib/k8s_manifests.py" "$mod/config/webhook/manifests.yaml" --name-suffix=-capo \
    --label cluster.x-k8s.io/provider=infrastructure-openstack --label clusterctl.cluster.x-k8s.io= \
    --webhook-url-base "https://127.0.0.1:$(world_port "capo-webhook-$s")" --ca-file "$WORLD_STATE/pki/ca.crt" |
    capo_kubectl "$s" apply --server-side --force-conflicts -f - >/dev/null
}

capo_manager_up() {
  local s=$1 cert=$CAPO_STATE/$1/certs
  # controller-runtime's webhook server always starts and needs a cert pair (world-facts §5)
  kube_cert "$cert" tls "capo-webhook-$s" "" "DNS:localhost,IP:127.0.0.1"
  world_start "capo-$s" -- "$WORLD_BIN/capo-manager" --kubeconfig "$KUBE_STATE/$s/admin.kubeconfig" \
    --leader-elect=false --webhook-port "$(world_port "capo-webhook-$s")" --webhook-cert-dir "$cert" \
    --health-addr "127.0.0.1:$(world_port "capo-health-$s")" --diagnostics-address 0 --v 2
}

capo_healthy() { curl -fsS "http://127.0.0.1:$(world_port "capo-health-$1")/readyz" >/dev/null; }

capo_standin_up() {
  local s=$1
  [ -s "$KUBE_STATE/workload/admin.kubeconfig" ] || die "the stand-in needs the 'workload' API server (WORLD_APISERVERS)"
  world_start "world-standin-$s" RUST_LOG=info -- "$WORLD_BIN/world-standin" \
    --management-kubeconfig "$KUBE_STATE/$s/admin.kubeconfig" \
    --workload-kubeconfig "$KUBE_STATE/workload/admin.kubeconfig"
}

capo_up() {
  mkdir -p "$CAPO_STATE"
  local s
  for s in $WORLD_CAPO_CRD_SERVERS; do capo_crds_up "$s"; done
  for s in $WORLD_CAPO_SERVERS; do capo_manager_up "$s"; done
  for s in $WORLD_CAPO_SERVERS; do
    wait_until 120 "CAPO manager on $s (log $WORLD_STATE/logs/capo-$s.log)" capo_healthy "$s"
    capo_webhooks_up "$s"
    capo_standin_up "$s"
    log "CAPO $CAPO_VERSION manager and the booting-node stand-in ready on $s"
  done
  world_env_set capo WORLD_CAPO_SERVERS "$WORLD_CAPO_SERVERS"
  world_env_set capo WORLD_CAPO_VERSION "$CAPO_VERSION"
  world_env_set capo WORLD_STANDIN "$WORLD_BIN/world-standin"
}

capo_down() {
  local s
  for s in $WORLD_CAPO_SERVERS; do world_stop "world-standin-$s"; world_stop "capo-$s"; done
  rm -rf "$CAPO_STATE"
}

capo_status() {
  local s
  for s in $WORLD_CAPO_SERVERS; do
    if capo_healthy "$s" 2>/dev/null; then echo "CAPO on $s: ready"; else echo "CAPO on $s: not ready"; fi
    if world_pid "world-standin-$s" >/dev/null; then echo "stand-in on $s: running"; else echo "stand-in on $s: not running"; fi
  done
}
