# common.sh: shared helpers of the test world: directories, logging, process tracking, ports, env.
# Sourced by world.sh; every part script (lib/<part>.sh) is sourced after it.

WORLD_DIR=${WORLD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
REPO_ROOT=$(cd "$WORLD_DIR/../.." && pwd)
# Runtime state (pid files, logs, data dirs, kubeconfigs, certs): outside the clone, wiped by `down`.
WORLD_STATE=${MANAGE_WORLD_STATE:-/var/tmp/manage-world}
# Built binaries and other slow-to-make artifacts: outside the clone, kept across runs.
WORLD_CACHE=${MANAGE_WORLD_CACHE:-/var/cache/manage-world}
WORLD_BIN=$WORLD_CACHE/bin
export WORLD_DIR REPO_ROOT WORLD_STATE WORLD_CACHE WORLD_BIN
mkdir -p "$WORLD_STATE"/{pids,logs,env.d} "$WORLD_BIN"

# shellcheck source=../versions.env
. "$WORLD_DIR/versions.env"

_T0=${_T0:-$(date +%s)}
log() { printf '[world %4ss] %s\n' "$(( $(date +%s) - _T0 ))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Parts, in start order. A part is any lib/<part>.sh other than common.sh; ORDER lists the known
# ones first so dependencies come up before their users.
WORLD_ORDER="kube controllers git faults docker openstack capo"
world_all_parts() {
  local p out=""
  for p in $WORLD_ORDER; do [ -f "$WORLD_DIR/lib/$p.sh" ] && out="$out $p"; done
  for f in "$WORLD_DIR"/lib/*.sh; do
    p=$(basename "$f" .sh)
    case " common $WORLD_ORDER " in *" $p "*) ;; *) out="$out $p";; esac
  done
  echo $out
}
for _f in "$WORLD_DIR"/lib/*.sh; do
  case "$_f" in */common.sh) ;; *) . "$_f";; esac
done

# --- processes -------------------------------------------------------------------------------
# PID files hold "PID STARTTIME" (field 22 of /proc/PID/stat) so a reused PID is never signalled.
_proc_start() { local st; st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1; set -- $st; echo "${20}"; }
# _proc_zombie PID: true when PID has exited but is not yet reaped (PID 1 here may reap slowly)
_proc_zombie() { local st; st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1; [ "${st%% *}" = Z ]; }

# world_pid NAME: prints the PID of tracked process NAME if it still runs.
world_pid() {
  local f=$WORLD_STATE/pids/$1.pid pid st
  [ -f "$f" ] || return 1
  read -r pid st <"$f" || return 1
  [ -n "$pid" ] && [ "$(_proc_start "$pid" 2>/dev/null)" = "$st" ] && ! _proc_zombie "$pid" && echo "$pid"
}

# world_start NAME [ENV=VAL…] -- CMD ARGS…: start CMD in its own session (process group), stdout and
# stderr to $WORLD_STATE/logs/NAME.log, PID tracked. No-op when NAME is already running.
world_start() {
  local name=$1; shift
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift
  if world_pid "$name" >/dev/null; then return 0; fi
  local logf=$WORLD_STATE/logs/$name.log
  # WORLD_OWNER marks the process and its children as this world's (check-down.sh looks for it)
  env WORLD_OWNER="$WORLD_STATE" "${envs[@]}" setsid "$@" >>"$logf" 2>&1 </dev/null &
  local pid=$!
  echo "$pid $(_proc_start "$pid")" >"$WORLD_STATE/pids/$name.pid"
  # every process ever started, for check-down.sh (kept across `down`)
  echo "$name $pid $(_proc_start "$pid")" >>"$WORLD_STATE/started.log"
}

# world_stop NAME: TERM the process group, KILL after 10 s.
world_stop() {
  local name=$1 pid i
  if pid=$(world_pid "$name"); then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do world_pid "$name" >/dev/null || break; sleep 0.1; done
    if world_pid "$name" >/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
    for i in $(seq 1 50); do world_pid "$name" >/dev/null || break; sleep 0.1; done
  fi
  rm -f "$WORLD_STATE/pids/$name.pid"
}

world_stop_all() {
  local f
  for f in "$WORLD_STATE"/pids/*.pid; do [ -e "$f" ] && world_stop "$(basename "$f" .pid)"; done
  return 0
}

world_list_procs() {
  local f n
  for f in "$WORLD_STATE"/pids/*.pid; do
    [ -e "$f" ] || continue; n=$(basename "$f" .pid)
    if p=$(world_pid "$n"); then echo "running  $n (pid $p)"; else echo "dead     $n (see $WORLD_STATE/logs/$n.log)"; fi
  done
}

# wait_until SECONDS DESCRIPTION CMD…: poll CMD every 0.2 s until it succeeds.
wait_until() {
  local secs=$1 what=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
}

# --- ports -----------------------------------------------------------------------------------
# world_port NAME: a free 127.0.0.1 port, remembered under NAME for the life of the state dir.
world_port() {
  local f=$WORLD_STATE/ports/$1
  mkdir -p "$WORLD_STATE/ports"
  if [ ! -s "$f" ]; then
    # Free now is not enough: a port remembered under another name (whose process is not up yet)
    # looks free too, and two parts would then race for it.
    local p i
    for i in $(seq 1 20); do
      p=$(/usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
      grep -qsx -- "$p" "$WORLD_STATE"/ports/* || break
    done
    echo "$p" >"$f"
  fi
  cat "$f"
}

# --- env for tests ---------------------------------------------------------------------------
# Each part writes KEY=VALUE lines to $WORLD_STATE/env.d/<part>.env (world_env_set does it);
# world.sh joins them into world.env, which tests read (crates/test-world).
world_env_file() { echo "$WORLD_STATE/world.env"; }
world_env_set() { # world_env_set PART KEY VALUE
  local f=$WORLD_STATE/env.d/$1.env
  touch "$f"; grep -v "^$2=" "$f" >"$f.tmp" || true; echo "$2=$3" >>"$f.tmp"; mv "$f.tmp" "$f"
}
world_write_env() {
  { echo "WORLD_STATE=$WORLD_STATE"; echo "WORLD_CACHE=$WORLD_CACHE"; echo "WORLD_BIN=$WORLD_BIN"
    cat "$WORLD_STATE"/env.d/*.env 2>/dev/null || true; } >"$(world_env_file)"
}
world_env_json() {
  /usr/bin/python3 - "$(world_env_file)" <<'PY'
import json, sys
out = {}
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if "=" in line:
        k, v = line.split("=", 1); out[k] = v
print(json.dumps(out, indent=2))
PY
}

# --- building from Go modules ----------------------------------------------------------------
# world_go_build FAMILY LDFLAGS PKG[=NAME]…: builds the main packages PKG… of the wrapper module
# tests/world/go/FAMILY (our go.mod/go.sum only; modules come through the Go module proxy) in one
# `go build` (shared compile), into $WORLD_BIN as NAME (default: the package's last element).
# Skipped when the stamp (hash of go.mod, go.sum, ldflags and package list) is unchanged and every
# binary exists. Packages whose last elements collide need separate calls (the Go build cache makes
# the second one cheap).
world_go_build() {
  local family=$1 ldflags=$2; shift 2
  local dir=$WORLD_DIR/go/$family spec pkg name pkgs=() names=()
  [ -f "$dir/go.mod" ] || die "no wrapper module $dir/go.mod"
  for spec in "$@"; do
    pkg=${spec%%=*}; name=${spec#*=}; [ "$name" = "$spec" ] && name=$(basename "$pkg")
    pkgs+=("$pkg"); names+=("$name")
  done
  local stamp_file=$WORLD_BIN/.stamp-$family-${names[0]} stamp
  stamp=$(cat "$dir/go.mod" "$dir/go.sum" 2>/dev/null | { cat; echo "$ldflags $*"; } | sha256sum | cut -c1-16)
  local missing=0 n
  for n in "${names[@]}"; do [ -x "$WORLD_BIN/$n" ] || missing=1; done
  if [ "$missing" = 0 ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  local out; out=$(mktemp -d "$WORLD_CACHE/build.XXXXXX")
  log "building $family: ${names[*]} (go build, first time can take minutes; log $WORLD_CACHE/build-$family.log)"
  local t0; t0=$(date +%s)
  if ! (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=${GOTOOLCHAIN:-auto} \
        go build -trimpath -ldflags "$ldflags" -o "$out/" "${pkgs[@]}") >"$WORLD_CACHE/build-$family.log" 2>&1; then
    tail -n 30 "$WORLD_CACHE/build-$family.log" >&2; rm -rf "$out"; die "go build of $family failed"
  fi
  local i
  for i in "${!pkgs[@]}"; do
    local built=$out/$(basename "${pkgs[$i]}")
    # a major-version suffix (…/v3) names the binary after the element before it
    case "$(basename "${pkgs[$i]}")" in v[0-9]*) built=$out/$(basename "$(dirname "${pkgs[$i]}")");; esac
    mv -f "$built" "$WORLD_BIN/${names[$i]}"
  done
  rm -rf "$out"; echo "$stamp" >"$stamp_file"
  log "built $family in $(( $(date +%s) - t0 ))s"
}
