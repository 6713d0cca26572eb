# kube.sh: the world's Kubernetes API servers: etcd + kube-apiserver (+ kube-controller-manager)
# per named server on 127.0.0.1, TLS from a world CA, an admin kubeconfig per server, and kubectl.
# Servers: WORLD_APISERVERS (default "bootstrap mgmt workload"). Binaries are built from our
# wrapper modules tests/world/go/{kube,etcd} at the pins in versions.env.

WORLD_APISERVERS=${WORLD_APISERVERS:-bootstrap mgmt workload}
KUBE_STATE=$WORLD_STATE/kube
# kube-controller-manager controllers the world runs (names from `kube-controller-manager --help`):
# garbage collection, namespace deletion, service accounts and their tokens. No workloads run here.
KCM_CONTROLLERS=${KCM_CONTROLLERS:-garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller}

kube_build() {
  local kv=$KUBERNETES_VERSION maj min
  maj=${kv#v}; maj=${maj%%.*}; min=${kv#v*.}; min=${min%%.*}
  local cb=k8s.io/component-base/version cg=k8s.io/client-go/pkg/version
  # /version must report the pin: CAPI and clusterctl refuse the default "v0.0.0-master".
  world_go_build kube "-s -w -X $cb.gitVersion=$kv -X $cb.gitMajor=$maj -X $cb.gitMinor=$min -X $cb.gitTreeState=clean \
-X $cg.gitVersion=$kv -X $cg.gitMajor=$maj -X $cg.gitMinor=$min -X $cg.gitTreeState=clean" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
  world_go_build etcd "-s -w" go.etcd.io/etcd/server/v3=etcd
}

# kube_upper NAME: env-var form of a server name (mgmt -> MGMT).
kube_upper() { echo "$1" | tr 'a-z-' 'A-Z_'; }

# --- certificates (openssl) ----------------------------------------------------------------------
# One world CA signs every serving and client certificate of the world (API servers, webhooks).
kube_ca() {
  local d=$WORLD_STATE/pki
  mkdir -p "$d"; chmod 700 "$d"
  [ -s "$d/ca.crt" ] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=manage-world-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  chmod 600 "$d/ca.key"
}

# kube_cert DIR NAME CN [O] [SAN]: key + cert signed by the world CA in DIR/NAME.{key,crt}.
kube_cert() {
  local dir=$1 name=$2 cn=$3 org=${4:-} san=${5:-} subj ext
  mkdir -p "$dir"
  [ -s "$dir/$name.crt" ] && return 0
  subj="/CN=$cn"; [ -n "$org" ] && subj="/O=$org$subj"
  ext=$(mktemp)
  if [ -n "$san" ]; then
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' "$san" >"$ext"
  else
    printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' >"$ext"
  fi
  openssl req -new -newkey rsa:2048 -nodes -subj "$subj" -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$WORLD_STATE/pki/ca.crt" -CAkey "$WORLD_STATE/pki/ca.key" \
    -CAcreateserial -days 30 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext"; chmod 600 "$dir/$name.key"
}

# kube_kubeconfig FILE SERVER URL CERT KEY: a kubeconfig with embedded credentials, mode 0600.
kube_kubeconfig() {
  local f=$1 name=$2 url=$3 crt=$4 key=$5
  umask 077
  cat >"$f" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster:
    server: $url
    certificate-authority-data: $(base64 -w0 "$WORLD_STATE/pki/ca.crt")
users:
- name: admin@$name
  user:
    client-certificate-data: $(base64 -w0 "$crt")
    client-key-data: $(base64 -w0 "$key")
contexts:
- name: $name
  context: {cluster: $name, user: admin@$name}
current-context: $name
EOF
  chmod 600 "$f"
}

# --- servers ---------------------------------------------------------------------------------
kube_server_up() {
  local s=$1 d=$KUBE_STATE/$1 ep pp port url
  mkdir -p "$d"/{etcd,certs}
  ep=$(world_port "etcd-$s"); pp=$(world_port "etcd-peer-$s"); port=$(world_port "apiserver-$s")
  url=https://127.0.0.1:$port
  kube_cert "$d/certs" apiserver "$s-apiserver" "" "DNS:localhost,IP:127.0.0.1"
  kube_cert "$d/certs" admin admin system:masters
  # in system:masters: with --use-service-account-credentials=false every controller (GC deletes
  # anything) acts as this user
  kube_cert "$d/certs" controller-manager system:kube-controller-manager system:masters
  [ -s "$d/certs/sa.key" ] || { openssl genrsa -out "$d/certs/sa.key" 2048 2>/dev/null; chmod 600 "$d/certs/sa.key"; }
  openssl rsa -in "$d/certs/sa.key" -pubout -out "$d/certs/sa.pub" 2>/dev/null
  world_start "etcd-$s" -- "$WORLD_BIN/etcd" --name "$s" --data-dir "$d/etcd" \
    --listen-client-urls "http://127.0.0.1:$ep" --advertise-client-urls "http://127.0.0.1:$ep" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "$s=http://127.0.0.1:$pp" --unsafe-no-fsync --log-level warn
  # Flags follow envtest's tested minimal set (world-facts §4); WORLD_APISERVER_PROFILING=true
  # serves /debug/pprof for benchmark investigations. The advertise address is loopback,
  # which the `kubernetes` Endpoints reconciler rejects, so that reconciler is off.
  world_start "apiserver-$s" -- "$WORLD_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ep" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --secure-port "$port" --endpoint-reconciler-type none \
    --tls-cert-file "$d/certs/apiserver.crt" --tls-private-key-file "$d/certs/apiserver.key" \
    --client-ca-file "$WORLD_STATE/pki/ca.crt" \
    --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true --authorization-mode RBAC \
    --disable-admission-plugins ServiceAccount \
    --service-account-issuer "$url/" --service-account-key-file "$d/certs/sa.pub" \
    --service-account-signing-key-file "$d/certs/sa.key" \
    --profiling="${WORLD_APISERVER_PROFILING:-false}" --v 1
  kube_kubeconfig "$d/admin.kubeconfig" "$s" "$url" "$d/certs/admin.crt" "$d/certs/admin.key"
  kube_kubeconfig "$d/controller-manager.kubeconfig" "$s" "$url" "$d/certs/controller-manager.crt" "$d/certs/controller-manager.key"
  local S; S=$(kube_upper "$s")
  world_env_set kube "WORLD_KUBECONFIG_$S" "$d/admin.kubeconfig"
  world_env_set kube "WORLD_APISERVER_URL_$S" "$url"
}

kube_ready() { "$WORLD_BIN/kubectl" --kubeconfig "$KUBE_STATE/$1/admin.kubeconfig" get --raw /readyz >/dev/null 2>&1; }

kube_kcm_up() {
  local s=$1 d=$KUBE_STATE/$1
  world_start "kcm-$s" -- "$WORLD_BIN/kube-controller-manager" \
    --kubeconfig "$d/controller-manager.kubeconfig" --leader-elect=false --secure-port 0 \
    --controllers "$KCM_CONTROLLERS" --use-service-account-credentials=false \
    --service-account-private-key-file "$d/certs/sa.key" --root-ca-file "$WORLD_STATE/pki/ca.crt" \
    --cluster-name "$s" --v 1
}

kube_up() {
  kube_ca
  local s
  for s in $WORLD_APISERVERS; do kube_server_up "$s"; done
  for s in $WORLD_APISERVERS; do
    wait_until 60 "API server $s (log $WORLD_STATE/logs/apiserver-$s.log)" kube_ready "$s"
    [ "${WORLD_KCM:-1}" = 1 ] && kube_kcm_up "$s"
    log "API server $s ready at $(grep -m1 server: "$KUBE_STATE/$s/admin.kubeconfig" | awk '{print $2}')"
  done
  world_env_set kube WORLD_APISERVERS "$WORLD_APISERVERS"
  world_env_set kube WORLD_CA_CERT "$WORLD_STATE/pki/ca.crt"
  world_env_set kube WORLD_KUBECTL "$WORLD_BIN/kubectl"
  world_env_set kube WORLD_KUBERNETES_VERSION "$KUBERNETES_VERSION"
}

kube_down() {
  # every server this state dir started, also those added on demand with another WORLD_APISERVERS
  local f n kind
  for kind in kcm apiserver etcd; do
    for f in "$WORLD_STATE"/pids/"$kind"-*.pid; do
      [ -e "$f" ] || continue; n=$(basename "$f" .pid); world_stop "$n"
    done
  done
  rm -rf "$KUBE_STATE" "$WORLD_STATE/pki"
  # forget the ports: the next up picks free ones (another world may have taken these meanwhile)
  rm -f "$WORLD_STATE"/ports/etcd-* "$WORLD_STATE"/ports/apiserver-*
}

kube_status() {
  local s
  for s in $WORLD_APISERVERS; do
    if kube_ready "$s"; then echo "apiserver $s: ready"; else echo "apiserver $s: not ready"; fi
  done
}
