# controllers.sh: real controllers as local processes against the world's API servers:
# Cluster API core + kubeadm bootstrap + kubeadm control plane (and clusterctl), Flux
# source-controller + kustomize-controller, the sealed-secrets controller (and kubeseal).
# Which servers get what:
#   WORLD_CAPI_SERVERS   CAPI managers + webhooks      (default "bootstrap mgmt")
#   WORLD_CAPI_CRD_SERVERS CAPI + clusterctl CRDs       (default "bootstrap mgmt workload"; conversion
#                        on a server without managers goes to the first CAPI server's managers)
#   WORLD_FLUX_SERVERS   Flux controllers + CRDs        (default "mgmt")
#   WORLD_SEALED_SERVERS sealed-secrets controller + CRD (default "mgmt")
# Every controller listens on its own 127.0.0.1 port (world_port); webhooks use a cert pair from
# the world CA. What is off, and why: ../README.md.

WORLD_CAPI_SERVERS=${WORLD_CAPI_SERVERS:-bootstrap mgmt}
WORLD_CAPI_CRD_SERVERS=${WORLD_CAPI_CRD_SERVERS:-bootstrap mgmt workload}
WORLD_FLUX_SERVERS=${WORLD_FLUX_SERVERS:-mgmt}
WORLD_SEALED_SERVERS=${WORLD_SEALED_SERVERS:-mgmt}
CTRL_STATE=$WORLD_STATE/controllers

# modules in the module cache (filled by the builds below); manifests are read from there
ctrl_moddir() { (cd "$WORLD_DIR/go/$1" && go list -m -f '{{.Dir}}' "$2"); }

controllers_build() {
  local v=$CAPI_VERSION maj min cv=sigs.k8s.io/cluster-api/version
  maj=${v#v}; maj=${maj%%.*}; min=${v#v*.}; min=${min%%.*}
  local capi_ld="-s -w -X $cv.gitVersion=$v -X $cv.gitMajor=$maj -X $cv.gitMinor=$min -X $cv.gitTreeState=clean"
  # bootstrap/kubeadm and controlplane/kubeadm are both "kubeadm": two calls, shared build cache.
  world_go_build capi "$capi_ld" sigs.k8s.io/cluster-api/core=capi-core \
    sigs.k8s.io/cluster-api/bootstrap/kubeadm=capi-bootstrap-kubeadm sigs.k8s.io/cluster-api/cmd/clusterctl
  world_go_build capi "$capi_ld" sigs.k8s.io/cluster-api/controlplane/kubeadm=capi-controlplane-kubeadm
  world_go_build flux "-s -w" github.com/fluxcd/source-controller github.com/fluxcd/kustomize-controller
  world_go_build sealed-secrets "-s -w -X main.VERSION=$SEALED_SECRETS_VERSION" \
    github.com/bitnami-labs/sealed-secrets/cmd/controller=sealed-secrets-controller \
    github.com/bitnami-labs/sealed-secrets/cmd/kubeseal
}

ctrl_kubectl() { local s=$1; shift; "$WORLD_BIN/kubectl" --kubeconfig "$KUBE_STATE/$s/admin.kubeconfig" "$@"; }
ctrl_manifests() { /usr/bin/python3 "$WORLD_DIR/lib/k8s_manifests.py" "$@"; }

# --- Cluster API ---------------------------------------------------------------------------------
# The three managers' families: name, package dir in the module, clusterctl provider name/type.
CAPI_FAMILIES="core bootstrap-kubeadm controlplane-kubeadm"
capi_dir() { case $1 in core) echo core;; bootstrap-kubeadm) echo bootstrap/kubeadm;; controlplane-kubeadm) echo controlplane/kubeadm;; esac; }
capi_provider() { case $1 in core) echo cluster-api;; bootstrap-kubeadm) echo bootstrap-kubeadm;; controlplane-kubeadm) echo control-plane-kubeadm;; esac; }
capi_provider_name() { case $1 in core) echo cluster-api;; *) echo kubeadm;; esac; }
capi_provider_ns() { case $1 in core) echo capi-system;; bootstrap-kubeadm) echo capi-kubeadm-bootstrap-system;; controlplane-kubeadm) echo capi-kubeadm-control-plane-system;; esac; }
capi_provider_type() { case $1 in core) echo CoreProvider;; bootstrap-kubeadm) echo BootstrapProvider;; controlplane-kubeadm) echo ControlPlaneProvider;; esac; }

capi_webhook_server() { # the server whose managers serve webhooks/conversion for server $1
  local s
  for s in $WORLD_CAPI_SERVERS; do [ "$s" = "$1" ] && { echo "$1"; return; }; done
  set -- $WORLD_CAPI_SERVERS; echo "$1"
}

capi_crds_up() { # capi_crds_up SERVER
  local s=$1 mod f port ws labels
  mod=$(ctrl_moddir capi sigs.k8s.io/cluster-api)
  ws=$(capi_webhook_server "$s")
  for f in $CAPI_FAMILIES; do
    port=$(world_port "capi-$f-webhook-$ws")
    labels=(--label "cluster.x-k8s.io/provider=$(capi_provider "$f")" --label "clusterctl.cluster.x-k8s.io=")
    # contract labels (kustomize adds them to the bootstrap and control-plane CRDs upstream)
    [ "$f" != core ] && labels+=(--label cluster.x-k8s.io/v1beta1=v1beta1 --label cluster.x-k8s.io/v1beta2=v1beta2)
    ctrl_manifests "$mod/$(capi_dir "$f")"/config/crd/bases/*.yaml "${labels[@]}" \
      --conversion-url "https://127.0.0.1:$port/convert" --ca-file "$WORLD_STATE/pki/ca.crt" |
      ctrl_kubectl "$s" apply --server-side --force-conflicts -f - >/dev/null
  done
  # clusterctl's inventory CRD (Provider), labelled the way `clusterctl init` labels it
  ctrl_manifests "$mod/cmd/clusterctl/config/manifest/clusterctl-api.yaml" \
    --label clusterctl.cluster.x-k8s.io= --label clusterctl.cluster.x-k8s.io/core=inventory |
    ctrl_kubectl "$s" apply --server-side --force-conflicts -f - >/dev/null
  ctrl_kubectl "$s" wait --for condition=Established --timeout 60s crd -l clusterctl.cluster.x-k8s.io >/dev/null
}

# Provider inventory objects, as `clusterctl init` would leave them (clusterctl move needs them).
capi_inventory_up() {
  local s=$1 f ns
  for f in $CAPI_FAMILIES; do
    ns=$(capi_provider_ns "$f")
    ctrl_kubectl "$s" create namespace "$ns" --dry-run=client -o yaml | ctrl_kubectl "$s" apply -f - >/dev/null
    ctrl_kubectl "$s" apply -f - >/dev/null <<EOF
apiVersion: clusterctl.cluster.x-k8s.io/v1alpha3
kind: Provider
metadata:
  name: $(capi_provider "$f")
  namespace: $ns
  labels:
    clusterctl.cluster.x-k8s.io: ""
    clusterctl.cluster.x-k8s.io/core: inventory
    cluster.x-k8s.io/provider: $(capi_provider "$f")
providerName: $(capi_provider_name "$f")
type: $(capi_provider_type "$f")
version: $CAPI_VERSION
EOF
  done
}

capi_managers_up() { # capi_managers_up SERVER
  local s=$1 f d port health cert=$CTRL_STATE/capi-$1/certs
  kube_cert "$cert" tls "capi-webhook-$s" "" "DNS:localhost,IP:127.0.0.1"
  for f in $CAPI_FAMILIES; do
    port=$(world_port "capi-$f-webhook-$s"); health=$(world_port "capi-$f-health-$s")
    # --diagnostics-address=0: no metrics endpoint; leader election stays off (default).
    world_start "capi-$f-$s" -- "$WORLD_BIN/capi-$f" --kubeconfig "$KUBE_STATE/$s/admin.kubeconfig" \
      --webhook-port "$port" --webhook-cert-dir "$cert" --webhook-cert-name tls.crt --webhook-key-name tls.key \
      --health-addr "127.0.0.1:$health" --diagnostics-address 0 --leader-elect=false --v 1
  done
}

capi_webhooks_up() { # admission webhooks of the three managers, pointed at their local ports
  local s=$1 mod f port
  mod=$(ctrl_moddir capi sigs.k8s.io/cluster-api)
  for f in $CAPI_FAMILIES; do
    port=$(world_port "capi-$f-webhook-$s")
    ctrl_manifests "$mod/$(capi_dir "$f")/config/webhook/manifests.yaml" --name-suffix="-$f" \
      --label "cluster.x-k8s.io/provider=$(capi_provider "$f")" --label "clusterctl.cluster.x-k8s.io=" \
      --webhook-url-base "https://127.0.0.1:$port" --ca-file "$WORLD_STATE/pki/ca.crt" |
      ctrl_kubectl "$s" apply --server-side --force-conflicts -f - >/dev/null
  done
}

capi_healthy() { # all three managers of SERVER answer /readyz
  local s=$1 f
  for f in $CAPI_FAMILIES; do
    curl -fsS "http://127.0.0.1:$(world_port "capi-$f-health-$s")/readyz" >/dev/null || return 1
  done
}

capi_up() {
  local s
  # servers in parallel: most of the time is each API server compiling the CRD schemas
  local pids=() p
  for s in $WORLD_CAPI_CRD_SERVERS; do
    ( capi_crds_up "$s" && capi_inventory_up "$s" ) & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || die "installing the CAPI CRDs failed (see above)"; done
  for s in $WORLD_CAPI_SERVERS; do capi_managers_up "$s"; done
  for s in $WORLD_CAPI_SERVERS; do
    wait_until 120 "CAPI managers on $s (logs $WORLD_STATE/logs/capi-*-$s.log)" capi_healthy "$s"
    capi_webhooks_up "$s"
    log "CAPI $CAPI_VERSION managers ready on $s"
  done
  world_env_set controllers WORLD_CAPI_SERVERS "$WORLD_CAPI_SERVERS"
  world_env_set controllers WORLD_CAPI_CRD_SERVERS "$WORLD_CAPI_CRD_SERVERS"
  world_env_set controllers WORLD_CLUSTERCTL "$WORLD_BIN/clusterctl"
  world_env_set controllers WORLD_CAPI_VERSION "$CAPI_VERSION"
  world_env_set controllers CLUSTERCTL_DISABLE_VERSIONCHECK true
}

# --- Flux ------------------------------------------------------------------------------------
flux_up() {
  local s src kus d sp
  src=$(ctrl_moddir flux github.com/fluxcd/source-controller)
  kus=$(ctrl_moddir flux github.com/fluxcd/kustomize-controller)
  for s in $WORLD_FLUX_SERVERS; do
    d=$CTRL_STATE/flux-$s; mkdir -p "$d/storage"
    ctrl_manifests "$src"/config/crd/bases/*.yaml "$kus"/config/crd/bases/*.yaml --label app.kubernetes.io/part-of=flux |
      ctrl_kubectl "$s" apply --server-side --force-conflicts -f - >/dev/null
    ctrl_kubectl "$s" create namespace flux-system --dry-run=client -o yaml | ctrl_kubectl "$s" apply -f - >/dev/null
    ctrl_kubectl "$s" wait --for condition=Established --timeout 60s crd -l app.kubernetes.io/part-of=flux >/dev/null
    sp=$(world_port "flux-storage-$s")
    world_start "flux-source-$s" KUBECONFIG="$KUBE_STATE/$s/admin.kubeconfig" RUNTIME_NAMESPACE=flux-system \
      -- "$WORLD_BIN/source-controller" --storage-path "$d/storage" --storage-addr "127.0.0.1:$sp" \
      --metrics-addr "127.0.0.1:$(world_port "flux-source-metrics-$s")" \
      --health-addr "127.0.0.1:$(world_port "flux-source-health-$s")" --events-addr "" \
      --watch-all-namespaces=true --enable-leader-election=false
    world_start "flux-kustomize-$s" KUBECONFIG="$KUBE_STATE/$s/admin.kubeconfig" RUNTIME_NAMESPACE=flux-system \
      -- "$WORLD_BIN/kustomize-controller" \
      --metrics-addr "127.0.0.1:$(world_port "flux-kustomize-metrics-$s")" \
      --health-addr "127.0.0.1:$(world_port "flux-kustomize-health-$s")" --events-addr "" \
      --watch-all-namespaces=true --enable-leader-election=false
  done
  for s in $WORLD_FLUX_SERVERS; do
    wait_until 60 "Flux source-controller on $s" curl -fsS "http://127.0.0.1:$(world_port "flux-source-health-$s")/readyz"
    wait_until 60 "Flux kustomize-controller on $s" curl -fsS "http://127.0.0.1:$(world_port "flux-kustomize-health-$s")/readyz"
    log "Flux source-controller $FLUX_SOURCE_VERSION + kustomize-controller $FLUX_KUSTOMIZE_VERSION ready on $s"
  done
  world_env_set controllers WORLD_FLUX_SERVERS "$WORLD_FLUX_SERVERS"
}

# --- sealed-secrets --------------------------------------------------------------------------
# The controller only has in-cluster config: it runs in its own mount namespace (unshare -m) with a
# tmpfs over /run holding the service-account token and CA at the fixed in-cluster paths, and
# KUBERNETES_SERVICE_HOST/PORT pointing at the server. The token is a real TokenRequest token of
# ServiceAccount kube-system/sealed-secrets-controller, bound to cluster-admin.
sealed_up() {
  local s mod d port url
  mod=$(ctrl_moddir sealed-secrets github.com/bitnami-labs/sealed-secrets)
  for s in $WORLD_SEALED_SERVERS; do
    d=$CTRL_STATE/sealed-$s; mkdir -p "$d/sa"; chmod 700 "$d"
    ctrl_manifests "$mod/helm/sealed-secrets/crds/bitnami.com_sealedsecrets.yaml" |
      ctrl_kubectl "$s" apply --server-side --force-conflicts -f - >/dev/null
    ctrl_kubectl "$s" -n kube-system create serviceaccount sealed-secrets-controller --dry-run=client -o yaml |
      ctrl_kubectl "$s" apply -f - >/dev/null
    ctrl_kubectl "$s" create clusterrolebinding sealed-secrets-controller --clusterrole cluster-admin \
      --serviceaccount kube-system:sealed-secrets-controller --dry-run=client -o yaml | ctrl_kubectl "$s" apply -f - >/dev/null
    ctrl_kubectl "$s" wait --for condition=Established --timeout 60s crd sealedsecrets.bitnami.com >/dev/null
    ctrl_kubectl "$s" -n kube-system create token sealed-secrets-controller --duration 48h >"$d/sa/token"
    cp "$WORLD_STATE/pki/ca.crt" "$d/sa/ca.crt"; echo kube-system >"$d/sa/namespace"
    url=$(world_port "apiserver-$s"); port=$(world_port "sealed-$s")
    world_start "sealed-secrets-$s" KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="$url" \
      POD_NAMESPACE=kube-system -- unshare -m --propagation private /bin/sh -c '
        set -e
        mount -t tmpfs -o mode=755 world-sa /run
        mkdir -p /run/secrets/kubernetes.io/serviceaccount
        cp "$1"/token "$1"/ca.crt "$1"/namespace /run/secrets/kubernetes.io/serviceaccount/
        shift; exec "$@"' sh "$d/sa" "$WORLD_BIN/sealed-secrets-controller" \
        --listen-addr "127.0.0.1:$port" --listen-metrics-addr "127.0.0.1:$(world_port "sealed-metrics-$s")" \
        --old-gc-behavior --update-status
  done
  for s in $WORLD_SEALED_SERVERS; do
    wait_until 90 "sealed-secrets controller on $s (log $WORLD_STATE/logs/sealed-secrets-$s.log)" \
      curl -fsS "http://127.0.0.1:$(world_port "sealed-$s")/v1/cert.pem"
    world_env_set controllers "WORLD_SEALED_SECRETS_CERT_URL_$(kube_upper "$s")" "http://127.0.0.1:$(world_port "sealed-$s")/v1/cert.pem"
    log "sealed-secrets controller $SEALED_SECRETS_VERSION ready on $s"
  done
  world_env_set controllers WORLD_SEALED_SERVERS "$WORLD_SEALED_SERVERS"
  world_env_set controllers WORLD_KUBESEAL "$WORLD_BIN/kubeseal"
}

controllers_up() {
  mkdir -p "$CTRL_STATE"
  capi_up
  flux_up
  sealed_up
}

controllers_down() {
  local f n
  for f in "$WORLD_STATE"/pids/*.pid; do
    [ -e "$f" ] || continue; n=$(basename "$f" .pid)
    case $n in capi-*|flux-*|sealed-secrets-*) world_stop "$n";; esac
  done
  rm -rf "$CTRL_STATE"
  rm -f "$WORLD_STATE"/ports/capi-* "$WORLD_STATE"/ports/flux-* "$WORLD_STATE"/ports/sealed-*
}

controllers_status() {
  local s
  for s in $WORLD_CAPI_SERVERS; do
    if capi_healthy "$s" 2>/dev/null; then echo "CAPI on $s: ready"; else echo "CAPI on $s: not ready"; fi
  done
}
