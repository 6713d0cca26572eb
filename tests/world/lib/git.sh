# git.sh: the world's git server: bare repositories under $WORLD_STATE/git/repos, served over SSH
# (Debian's openssh-server: its own sshd on a 127.0.0.1 port, its own config and host key, key auth
# only, git-shell as the forced command) and over smart HTTP (git http-backend behind
# lib/git_http.py), the latter twice: plain HTTP without authentication, and HTTPS (a server
# certificate signed by the world CA) that requires HTTP basic auth with a token generated at `up`
# (any user name, the token as password; 0600 in $WORLD_STATE/git/token). A bare repository `fleet.git` is created; tests may create more in the repos dir
# (`git init --bare`, then `git config http.receivepack true` to push over HTTP).

GIT_STATE=$WORLD_STATE/git

git_ssh_ready() { ssh-keyscan -p "$(world_port git-ssh)" -t ed25519 127.0.0.1 2>/dev/null | grep -q ssh-ed25519; }
git_http_ready() { curl -fsS "http://127.0.0.1:$(world_port git-http)/fleet.git/info/refs?service=git-upload-pack" >/dev/null; }
git_https_ready() {
  [ -s "$GIT_STATE/token" ] || return 1
  curl -fsS --cacert "$WORLD_STATE/pki/ca.crt" -u "world:$(cat "$GIT_STATE/token")" \
    "https://127.0.0.1:$(world_port git-https)/fleet.git/info/refs?service=git-upload-pack" >/dev/null
}

git_up() {
  [ -x /usr/sbin/sshd ] || die "git: /usr/sbin/sshd missing (apt-get install openssh-server; ci-up.sh does it)"
  local d=$GIT_STATE ssh_port http_port https_port
  mkdir -p "$d/repos" "$d/sshd"; chmod 700 "$d" "$d/sshd"
  ssh_port=$(world_port git-ssh); http_port=$(world_port git-http); https_port=$(world_port git-https)
  # HTTPS: a serving certificate from the world CA, and a random token (never committed)
  kube_ca
  kube_cert "$d/tls" server world-git "" "DNS:localhost,IP:127.0.0.1"
  if [ ! -s "$d/token" ]; then
    (umask 077; openssl rand -hex 24 >"$d/token")
  fi
  chmod 600 "$d/token"
  [ -s "$d/sshd/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C world-git-host -f "$d/sshd/host_ed25519"
  [ -s "$d/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C world-git-client -f "$d/client_ed25519"
  # the client key may only run git (upload-pack / receive-pack) through git-shell
  printf 'restrict,command="/usr/bin/git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"" %s\n' \
    "$(cat "$d/client_ed25519.pub")" >"$d/sshd/authorized_keys"
  chmod 600 "$d/sshd/authorized_keys"
  cat >"$d/sshd/sshd_config" <<EOF
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $d/sshd/host_ed25519
PidFile none
AuthorizedKeysFile $d/sshd/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers $(id -un)
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
PermitTTY no
LogLevel INFO
EOF
  mkdir -p /run/sshd # sshd's privilege-separation directory (the Debian package's tmpfiles.d makes it)
  if [ ! -d "$d/repos/fleet.git" ]; then
    git init -q --bare -b main "$d/repos/fleet.git"
    git -C "$d/repos/fleet.git" config http.receivepack true
  fi
  world_start git-sshd -- /usr/sbin/sshd -D -e -f "$d/sshd/sshd_config"
  world_start git-http -- /usr/bin/python3 "$WORLD_DIR/lib/git_http.py" 127.0.0.1 "$http_port" "$d/repos"
  wait_until 20 "sshd (log $WORLD_STATE/logs/git-sshd.log)" git_ssh_ready
  world_start git-https -- /usr/bin/python3 "$WORLD_DIR/lib/git_http.py" 127.0.0.1 "$https_port" "$d/repos" \
    "$d/tls/server.crt" "$d/tls/server.key" "$d/token"
  wait_until 20 "git http server (log $WORLD_STATE/logs/git-http.log)" git_http_ready
  wait_until 20 "git https server (log $WORLD_STATE/logs/git-https.log)" git_https_ready
  local hostkey; hostkey=$(cut -d' ' -f1,2 "$d/sshd/host_ed25519.pub")
  echo "[127.0.0.1]:$ssh_port $hostkey" >"$d/known_hosts"
  world_env_set git WORLD_GIT_REPOS_DIR "$d/repos"
  world_env_set git WORLD_GIT_SSH_URL "ssh://$(id -un)@127.0.0.1:$ssh_port$d/repos/fleet.git"
  world_env_set git WORLD_GIT_SSH_URL_BASE "ssh://$(id -un)@127.0.0.1:$ssh_port$d/repos"
  world_env_set git WORLD_GIT_HTTP_URL "http://127.0.0.1:$http_port/fleet.git"
  world_env_set git WORLD_GIT_HTTP_URL_BASE "http://127.0.0.1:$http_port"
  world_env_set git WORLD_GIT_HTTPS_URL "https://127.0.0.1:$https_port/fleet.git"
  world_env_set git WORLD_GIT_HTTPS_URL_BASE "https://127.0.0.1:$https_port"
  world_env_set git WORLD_GIT_TOKEN_FILE "$d/token"
  world_env_set git WORLD_GIT_CA_CERT "$WORLD_STATE/pki/ca.crt"
  world_env_set git WORLD_GIT_SSH_KEY "$d/client_ed25519"
  world_env_set git WORLD_GIT_KNOWN_HOSTS "$d/known_hosts"
  world_env_set git WORLD_GIT_KNOWN_HOSTS_LINE "[127.0.0.1]:$ssh_port $hostkey"
  log "git server: ssh on 127.0.0.1:$ssh_port, http on 127.0.0.1:$http_port, https (token) on 127.0.0.1:$https_port"
}

git_down() {
  world_stop git-sshd; world_stop git-http; world_stop git-https
  rm -rf "$GIT_STATE"
  rm -f "$WORLD_STATE"/ports/git-*
}

git_status() {
  if git_ssh_ready; then echo "git ssh: ready"; else echo "git ssh: not ready"; fi
  if git_http_ready; then echo "git http: ready"; else echo "git http: not ready"; fi
  if git_https_ready; then echo "git https: ready"; else echo "git https: not ready"; fi
}
