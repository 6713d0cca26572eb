# openstack.sh: the world's OpenStack (Keystone, Glance, Neutron, Nova with the fake driver,
# Placement, Cinder, Octavia with no-op drivers) on 127.0.0.1, from Debian's packages, brought up and
# down by the project's copies of the team's openstack-local scripts in tests/world/openstack/
# (up.sh, down.sh, smoke.sh; adopted so a fresh clone is self-sufficient). They track their own
# processes (PID files under $OSL_STATE/pids, one process group per service).
#
# Knobs: WORLD_OPENSTACK_TOOLS (another directory with up.sh/down.sh), WORLD_OPENSTACK_PURGE (default 1: `down`
# drops the cloud's databases so the next `up` starts from an empty cloud; 0 keeps them, faster).
# Env for tests: WORLD_OS_CLOUDS_YAML and OS_CLIENT_CONFIG_FILE (clouds admin, admin-system, demo);
# WORLD_OS_FAULTY_CLOUDS_YAML, the same clouds reached through lib/osfaultproxy.py (every API, the
# catalog rewritten to the proxy's ports), scripted at WORLD_OS_FAULTPROXY_CONTROL.

openstack_tools() {
  local d
  for d in "${WORLD_OPENSTACK_TOOLS:-}" "$REPO_ROOT/tests/world/openstack"; do
    [ -n "$d" ] && [ -x "$d/up.sh" ] && { echo "$d"; return 0; }
  done
  die "tests/world/openstack/up.sh missing (or set WORLD_OPENSTACK_TOOLS to a directory with up.sh)"
}

OS_CLOUDS_YAML=$WORLD_STATE/openstack/clouds.yaml

openstack_up() {
  local tools; tools=$(openstack_tools)
  mkdir -p "$WORLD_STATE/openstack"
  # up.sh is idempotent (a re-run while up takes seconds) and installs its packages when missing.
  # umask 022: the services run as their own users and must read what up.sh writes (an earlier
  # part may have left the shell's umask at 077)
  (umask 022; bash "$tools/up.sh" "$OS_CLOUDS_YAML") >>"$WORLD_STATE/logs/openstack-up.log" 2>&1 \
    || { tail -n 30 "$WORLD_STATE/logs/openstack-up.log" >&2; die "openstack up.sh failed (log $WORLD_STATE/logs/openstack-up.log)"; }
  world_env_set openstack WORLD_OS_CLOUDS_YAML "$OS_CLOUDS_YAML"
  world_env_set openstack OS_CLIENT_CONFIG_FILE "$OS_CLOUDS_YAML"
  world_env_set openstack WORLD_OS_AUTH_URL "http://127.0.0.1:5000/v3"
  openstack_faults_up
}

# keystone nova neutron glance cinder octavia placement
OS_API_PORTS="5000 8774 9696 9292 8776 9876 8778"

openstack_faults_up() {
  local routes=() p l ctl ks
  for p in $OS_API_PORTS; do
    l=$(world_port "os-faultproxy-$p"); routes+=(--route "$l=$p")
    [ "$p" = 5000 ] && ks=$l
  done
  ctl=$(world_port os-faultproxy-control)
  world_start os-faultproxy -- /usr/bin/python3 "$WORLD_DIR/lib/osfaultproxy.py" --control "127.0.0.1:$ctl" "${routes[@]}"
  wait_until 20 "OpenStack fault proxy (log $WORLD_STATE/logs/os-faultproxy.log)" curl -fsS "http://127.0.0.1:$ctl/faults"
  sed "s#http://127.0.0.1:5000/#http://127.0.0.1:$ks/#" "$OS_CLOUDS_YAML" >"$WORLD_STATE/openstack/clouds-faulty.yaml"
  chmod 600 "$WORLD_STATE/openstack/clouds-faulty.yaml"
  world_env_set openstack WORLD_OS_FAULTY_CLOUDS_YAML "$WORLD_STATE/openstack/clouds-faulty.yaml"
  world_env_set openstack WORLD_OS_FAULTPROXY_CONTROL "http://127.0.0.1:$ctl"
}

openstack_down() {
  world_stop os-faultproxy
  rm -f "$WORLD_STATE"/ports/os-faultproxy*
  local tools; tools=$(openstack_tools) || return 0
  local purge=()
  [ "${WORLD_OPENSTACK_PURGE:-1}" = 1 ] && purge=(--purge)
  (umask 022; bash "$tools/down.sh" "${purge[@]}") >>"$WORLD_STATE/logs/openstack-down.log" 2>&1 || true
  rm -rf "$WORLD_STATE/openstack"
}

openstack_status() {
  if [ -s "$OS_CLOUDS_YAML" ] && curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:5000/v3; then
    echo "openstack: keystone answers (clouds.yaml $OS_CLOUDS_YAML)"
  else
    echo "openstack: not running"
  fi
}
