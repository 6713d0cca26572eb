# faults.sh: fault proxies in front of API servers (WORLD_FAULT_SERVERS, default "mgmt"):
# - toxiproxy (built from its Go module): TCP-level latency, bandwidth, resets, timeouts, cuts;
#   one proxy `apiserver-<server>` per server, scripted through toxiproxy's HTTP API;
# - lib/faultproxy.py (ours): HTTP-level faults (e.g. 503 answers), which toxiproxy cannot make.
# Each gets a kubeconfig that goes through it.

WORLD_FAULT_SERVERS=${WORLD_FAULT_SERVERS:-mgmt}
FAULT_STATE=$WORLD_STATE/faults

faults_build() {
  world_go_build toxiproxy "-s -w -X github.com/Shopify/toxiproxy/v2.Version=${TOXIPROXY_VERSION#v}" \
    github.com/Shopify/toxiproxy/v2/cmd/server=toxiproxy-server github.com/Shopify/toxiproxy/v2/cmd/cli=toxiproxy-cli
}

faults_up() {
  local api s d tp fp cp up S
  mkdir -p "$FAULT_STATE"
  api=$(world_port toxiproxy-api)
  world_start toxiproxy -- "$WORLD_BIN/toxiproxy-server" -host 127.0.0.1 -port "$api"
  wait_until 20 "toxiproxy (log $WORLD_STATE/logs/toxiproxy.log)" curl -fsS "http://127.0.0.1:$api/version"
  for s in $WORLD_FAULT_SERVERS; do
    d=$KUBE_STATE/$s; S=$(kube_upper "$s"); up=$(world_port "apiserver-$s")
    tp=$(world_port "toxiproxy-$s"); fp=$(world_port "faultproxy-$s"); cp=$(world_port "faultproxy-control-$s")
    curl -fsS -X DELETE "http://127.0.0.1:$api/proxies/apiserver-$s" >/dev/null 2>&1 || true
    curl -fsS -X POST "http://127.0.0.1:$api/proxies" -H 'Content-Type: application/json' \
      -d "{\"name\":\"apiserver-$s\",\"listen\":\"127.0.0.1:$tp\",\"upstream\":\"127.0.0.1:$up\",\"enabled\":true}" >/dev/null
    kube_kubeconfig "$FAULT_STATE/toxiproxy-$s.kubeconfig" "$s" "https://127.0.0.1:$tp" "$d/certs/admin.crt" "$d/certs/admin.key"
    kube_cert "$FAULT_STATE/certs-$s" tls "faultproxy-$s" "" "DNS:localhost,IP:127.0.0.1"
    world_start "faultproxy-$s" -- /usr/bin/python3 "$WORLD_DIR/lib/faultproxy.py" \
      --listen "127.0.0.1:$fp" --control "127.0.0.1:$cp" --upstream "127.0.0.1:$up" \
      --cert "$FAULT_STATE/certs-$s/tls.crt" --key "$FAULT_STATE/certs-$s/tls.key" --ca "$WORLD_STATE/pki/ca.crt" \
      --client-cert "$d/certs/admin.crt" --client-key "$d/certs/admin.key"
    kube_kubeconfig "$FAULT_STATE/faultproxy-$s.kubeconfig" "$s" "https://127.0.0.1:$fp" "$d/certs/admin.crt" "$d/certs/admin.key"
    wait_until 20 "fault proxy for $s (log $WORLD_STATE/logs/faultproxy-$s.log)" curl -fsS "http://127.0.0.1:$cp/faults"
    world_env_set faults "WORLD_TOXIPROXY_KUBECONFIG_$S" "$FAULT_STATE/toxiproxy-$s.kubeconfig"
    world_env_set faults "WORLD_FAULTPROXY_KUBECONFIG_$S" "$FAULT_STATE/faultproxy-$s.kubeconfig"
    world_env_set faults "WORLD_FAULTPROXY_CONTROL_$S" "http://127.0.0.1:$cp"
    log "fault proxies for $s: toxiproxy 127.0.0.1:$tp, HTTP faults 127.0.0.1:$fp (control :$cp)"
  done
  world_env_set faults WORLD_TOXIPROXY_API "http://127.0.0.1:$api"
  world_env_set faults WORLD_FAULT_SERVERS "$WORLD_FAULT_SERVERS"
}

faults_down() {
  local s
  for s in $WORLD_FAULT_SERVERS; do world_stop "faultproxy-$s"; done
  world_stop toxiproxy
  rm -rf "$FAULT_STATE"
  rm -f "$WORLD_STATE"/ports/toxiproxy* "$WORLD_STATE"/ports/faultproxy*
}
