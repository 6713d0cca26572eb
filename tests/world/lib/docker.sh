# docker.sh: the world's Docker engine (Debian's docker.io dockerd on its own socket, vfs storage,
# no iptables) and the locally built node image manage-world/node:<Kubernetes version>
# (tests/world/node-image: busybox-static + the real etcd, kube-apiserver and kubectl of the world +
# a stand-in `kubeadm`). Nothing is ever pulled. Install the package with tests/world/ci-up-cloud.sh.
#
# Env for tests: DOCKER_HOST, WORLD_DOCKER_SOCK, WORLD_NODE_IMAGE.

DOCKER_SOCK=$WORLD_STATE/docker.sock
# Images and layers live in the cache so the node image survives `down`; containers, networks and
# volumes are removed by `down`.
DOCKER_DATA=$WORLD_CACHE/docker
DOCKER_EXEC=$WORLD_STATE/docker-exec
NODE_IMAGE=manage-world/node:$KUBERNETES_VERSION
NODE_IMAGE_DIR=$WORLD_CACHE/node-image

wdocker() { DOCKER_HOST=unix://$DOCKER_SOCK docker "$@"; }

# docker_node_image_tar: assembles the node image root file system and packs it into a tar in the
# cache (named by the hash of its inputs); prints the tar's path.
docker_node_image_tar() {
  local src=$WORLD_DIR/node-image b
  for b in etcd kube-apiserver kubectl; do
    [ -x "$WORLD_BIN/$b" ] || die "node image needs $WORLD_BIN/$b (kube part: world.sh build kube)"
  done
  [ -x /bin/busybox ] || die "node image needs busybox-static (tests/world/ci-up-cloud.sh installs it)"
  local hash
  hash=$( { (cd "$src" && find . -type f | sort | xargs sha256sum)
            sha256sum "$WORLD_BIN/etcd" "$WORLD_BIN/kube-apiserver" "$WORLD_BIN/kubectl" /bin/busybox /usr/bin/openssl
            echo "$KUBERNETES_VERSION"; } | sha256sum | cut -c1-16)
  local tar=$NODE_IMAGE_DIR/node-$KUBERNETES_VERSION-$hash.tar
  if [ ! -s "$tar" ]; then
    log "assembling node image root file system ($tar)"
    local r; r=$(mktemp -d "$WORLD_CACHE/node-rootfs.XXXXXX")
    mkdir -p "$r"/{bin,sbin,etc/kubernetes/manifests,usr/bin,usr/local/bin,usr/lib/ssl,kind/manifests,tmp,run,var/log,var/lib,root,lib64,lib/x86_64-linux-gnu}
    chmod 1777 "$r/tmp"
    cp /bin/busybox "$r/bin/busybox"
    local a
    for a in $(/bin/busybox --list); do
      [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
    done
    # openssl for the stand-in kubeadm's certificates, with the shared libraries it links
    cp /usr/bin/openssl "$r/usr/bin/openssl"
    ldd /usr/bin/openssl | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r lib; do
      mkdir -p "$r$(dirname "$lib")"; cp -L "$lib" "$r$lib"
    done
    cp -L /etc/ssl/openssl.cnf "$r/usr/lib/ssl/openssl.cnf"
    cp "$WORLD_BIN/etcd" "$WORLD_BIN/kube-apiserver" "$WORLD_BIN/kubectl" "$r/usr/bin/"
    install -m 0755 "$src/kubeadm" "$r/usr/bin/kubeadm"
    install -m 0755 "$src/entrypoint" "$src/world-control-plane" "$r/usr/local/bin/"
    install -m 0644 "$src"/manifests/*.yaml "$r/kind/manifests/"
    echo "$KUBERNETES_VERSION" >"$r/kind/version"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
    echo 'hosts: files dns' >"$r/etc/nsswitch.conf"
    mkdir -p "$NODE_IMAGE_DIR"; rm -f "$NODE_IMAGE_DIR"/node-"$KUBERNETES_VERSION"-*.tar
    tar --numeric-owner --owner=0 --group=0 -C "$r" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
    rm -rf "$r"
  fi
  echo "$tar"
}

docker_build() {
  command -v dockerd >/dev/null || die "dockerd not installed (apt-get install docker.io; tests/world/ci-up-cloud.sh does it)"
  declare -F kube_build >/dev/null && kube_build
  docker_node_image_tar >/dev/null
}

docker_ready() { wdocker version >/dev/null 2>&1; }

docker_up() {
  mkdir -p "$DOCKER_DATA" "$DOCKER_EXEC"
  world_start dockerd -- dockerd --data-root "$DOCKER_DATA" --exec-root "$DOCKER_EXEC" \
    -H "unix://$DOCKER_SOCK" --pidfile "$DOCKER_EXEC/dockerd.pid" \
    --iptables=false --storage-driver=vfs --log-level warn
  wait_until 60 "dockerd (log $WORLD_STATE/logs/dockerd.log)" docker_ready
  local tar hash
  tar=$(docker_node_image_tar); hash=${tar##*-}; hash=${hash%.tar}
  if [ "$(wdocker image inspect -f '{{index .Config.Labels "manage-world.input-hash"}}' "$NODE_IMAGE" 2>/dev/null)" != "$hash" ]; then
    log "importing node image $NODE_IMAGE"
    wdocker import \
      --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV container=docker' \
      --change "LABEL manage-world.input-hash=$hash" \
      --change "LABEL org.opencontainers.image.title=manage-world-node" \
      --change "LABEL org.opencontainers.image.version=$KUBERNETES_VERSION" \
      "$tar" "$NODE_IMAGE" >/dev/null
  fi
  world_env_set docker DOCKER_HOST "unix://$DOCKER_SOCK"
  world_env_set docker WORLD_DOCKER_SOCK "$DOCKER_SOCK"
  world_env_set docker WORLD_NODE_IMAGE "$NODE_IMAGE"
}

# docker_down: removes every container (with its anonymous volumes), user network and volume of the
# world's engine, then stops dockerd (and the containerd it started).
docker_down() {
  if world_pid dockerd >/dev/null && docker_ready; then
    local ids
    ids=$(wdocker ps -aq)
    [ -n "$ids" ] && wdocker rm -f -v $ids >/dev/null
    wdocker network prune -f >/dev/null 2>&1 || true
    wdocker volume prune -f >/dev/null 2>&1 || true
  fi
  world_stop dockerd
  # containers' shims run in their own sessions: after the containers are removed none may remain
  local f
  for f in /proc/[0-9]*/cmdline; do
    if { tr '\0' ' ' <"$f"; } 2>/dev/null | grep -q -- "$DOCKER_EXEC/"; then
      log "WARNING: still running after docker down: $(tr '\0' ' ' <"$f" | cut -c1-120) (${f%/cmdline})"
    fi
  done
  # dockerd leaves its default bridge device behind; it made it, so it goes too
  if ip link show docker0 >/dev/null 2>&1; then ip link delete docker0 2>/dev/null || true; fi
  rm -rf "$DOCKER_EXEC" "$DOCKER_SOCK"
}

docker_status() {
  if docker_ready; then
    echo "docker: running ($(wdocker ps -q | wc -l) containers; image $NODE_IMAGE $(wdocker image inspect -f '{{.Size}}' "$NODE_IMAGE" 2>/dev/null || echo absent))"
  else
    echo "docker: not running"
  fi
}
