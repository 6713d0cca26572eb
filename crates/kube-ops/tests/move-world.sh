#!/usr/bin/env bash
# move-world.sh up|down: a second, small instance of the test world for move tests and the move
# benchmark — API servers `src` and `dst` (etcd + kube-apiserver + kube-controller-manager), the
# CAPI + clusterctl CRDs and Provider inventory on both, and NO Cluster API managers, so objects
# keep the status the tests set through the status subresource and nothing reconciles behind the
# move's back; clusterctl and ours see exactly the same servers. Conversion webhooks point at a
# manager that does not run: every client here uses the storage version v1beta2, so conversion is
# never called. Also: the Docker "dev" infrastructure CRDs (../shared/crds, labelled as clusterctl
# init would) with an InfrastructureProvider inventory in capd-system, a cluster-scoped identity
# CRD labelled move-hierarchy (like CAPA's AWSClusterStaticIdentity), Flux's Kustomization and
# HelmRelease CRDs, and fault proxies in front of both servers when toxiproxy is built. It reuses tests/world's functions and binaries ($WORLD_BIN) with its
# own state directory (default /var/tmp/manage-move-world, override MOVE_WORLD_STATE).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
world=$(cd "$here/../../../tests/world" && pwd)
export MANAGE_WORLD_STATE=${MOVE_WORLD_STATE:-/var/tmp/manage-move-world}
export WORLD_APISERVERS="src dst" WORLD_FAULT_SERVERS="src dst" WORLD_CAPI_SERVERS="none" WORLD_CAPI_CRD_SERVERS="src dst"
export WORLD_DIR=$world
. "$world/lib/common.sh"; . "$world/lib/kube.sh"; . "$world/lib/controllers.sh"; . "$world/lib/faults.sh"
shared=$(cd "$REPO_ROOT/../shared/crds" && pwd)
move_extra_up() {
  local s=$1
  ctrl_manifests "$shared"/cluster-api-docker/*.yaml --label cluster.x-k8s.io/provider=infrastructure-docker \
    --label clusterctl.cluster.x-k8s.io= --label cluster.x-k8s.io/v1beta2=v1beta2 |
    ctrl_kubectl "$s" apply --server-side --force-conflicts -f - >/dev/null
  ctrl_manifests "$shared"/flux/kustomize.toolkit.fluxcd.io_kustomizations.yaml "$shared"/flux/helm.toolkit.fluxcd.io_helmreleases.yaml |
    ctrl_kubectl "$s" apply --server-side --force-conflicts -f - >/dev/null
  ctrl_kubectl "$s" apply --server-side --force-conflicts -f - >/dev/null <<'YAML'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: devclusteridentities.infrastructure.cluster.x-k8s.io
  labels:
    clusterctl.cluster.x-k8s.io: ""
    clusterctl.cluster.x-k8s.io/move-hierarchy: ""
    cluster.x-k8s.io/provider: infrastructure-docker
    cluster.x-k8s.io/v1beta2: v1beta2
spec:
  group: infrastructure.cluster.x-k8s.io
  scope: Cluster
  names: {kind: DevClusterIdentity, listKind: DevClusterIdentityList, plural: devclusteridentities, singular: devclusteridentity}
  versions:
  - name: v1beta2
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: v1
kind: Namespace
metadata: {name: capd-system}
---
apiVersion: clusterctl.cluster.x-k8s.io/v1alpha3
kind: Provider
metadata:
  name: infrastructure-docker
  namespace: capd-system
  labels: {clusterctl.cluster.x-k8s.io: "", clusterctl.cluster.x-k8s.io/core: inventory, cluster.x-k8s.io/provider: infrastructure-docker}
providerName: docker
type: InfrastructureProvider
version: v1.14.0
YAML
  ctrl_kubectl "$s" wait --for condition=Established --timeout 60s crd -l clusterctl.cluster.x-k8s.io >/dev/null
}

# Only the HTTP status fault proxy (no toxiproxy binary yet): the inner part of faults_up.
move_faultproxy_up() {
  local s d S up fp cp
  mkdir -p "$FAULT_STATE"
  for s in $WORLD_FAULT_SERVERS; do
    d=$KUBE_STATE/$s; S=$(kube_upper "$s"); up=$(world_port "apiserver-$s")
    fp=$(world_port "faultproxy-$s"); cp=$(world_port "faultproxy-control-$s")
    kube_cert "$FAULT_STATE/certs-$s" tls "faultproxy-$s" "" "DNS:localhost,IP:127.0.0.1"
    world_start "faultproxy-$s" -- /usr/bin/python3 "$WORLD_DIR/lib/faultproxy.py" \
      --listen "127.0.0.1:$fp" --control "127.0.0.1:$cp" --upstream "127.0.0.1:$up" \
      --cert "$FAULT_STATE/certs-$s/tls.crt" --key "$FAULT_STATE/certs-$s/tls.key" --ca "$WORLD_STATE/pki/ca.crt" \
      --client-cert "$d/certs/admin.crt" --client-key "$d/certs/admin.key"
    kube_kubeconfig "$FAULT_STATE/faultproxy-$s.kubeconfig" "$s" "https://127.0.0.1:$fp" "$d/certs/admin.crt" "$d/certs/admin.key"
    wait_until 20 "fault proxy for $s" curl -fsS "http://127.0.0.1:$cp/faults"
    world_env_set faults "WORLD_FAULTPROXY_KUBECONFIG_$S" "$FAULT_STATE/faultproxy-$s.kubeconfig"
    world_env_set faults "WORLD_FAULTPROXY_CONTROL_$S" "http://127.0.0.1:$cp"
  done
}

case ${1:-up} in
  up)
    kube_up
    for s in $WORLD_CAPI_CRD_SERVERS; do capi_crds_up "$s"; capi_inventory_up "$s"; done
    for s in $WORLD_CAPI_CRD_SERVERS; do move_extra_up "$s"; done
    world_env_set controllers WORLD_CAPI_CRD_SERVERS "$WORLD_CAPI_CRD_SERVERS"
    world_env_set controllers WORLD_CLUSTERCTL "$WORLD_BIN/clusterctl"
    if [ -x "$WORLD_BIN/toxiproxy-server" ]; then faults_up; else move_faultproxy_up; fi
    world_write_env
    log "move world up: $(world_env_file)" ;;
  down)
    for s in $WORLD_FAULT_SERVERS; do world_stop "faultproxy-$s"; done
    world_stop toxiproxy 2>/dev/null || true
    kube_down
    rm -rf "$WORLD_STATE" ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
