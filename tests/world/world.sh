#!/usr/bin/env bash
# world.sh build|up|down|status|env [PART…]
#
# The project's test world: real upstream parts (kube-apiserver + etcd, Cluster API, CAPO, Flux,
# sealed-secrets, clusterctl, Docker, OpenStack, a git server, a fault proxy) built from their Go
# modules or Debian packages and run as local processes on 127.0.0.1. See README.md beside this file.
#
# Each part is lib/<part>.sh and may define <part>_build, <part>_up, <part>_down, <part>_status and
# <part>_env. Parts run in the order of WORLD_PARTS; `down` runs them in reverse and then stops every
# process the world started (by PID file, never by name); `down PART…` runs only those parts' hooks.
set -Eeuo pipefail
WORLD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$WORLD_DIR/lib/common.sh"

ALL_PARTS=$(world_all_parts)
cmd=${1:-status}; shift || true
parts=${*:-${WORLD_PARTS:-$ALL_PARTS}}

run_hook() { # run_hook PART HOOK: calls <part>_<hook> when the part defines it
  local fn="${1}_${2}"
  if declare -F "$fn" >/dev/null; then "$fn"; fi
}

case "$cmd" in
  build)
    for p in $parts; do run_hook "$p" build; done ;;
  up)
    for p in $parts; do run_hook "$p" build; done
    for p in $parts; do
      t0=$(date +%s); run_hook "$p" up; log "part $p up in $(( $(date +%s) - t0 ))s"
    done
    world_write_env
    log "world up: $(world_env_file)" ;;
  down)
    if [ $# -gt 0 ]; then
      # only the named parts: their hooks stop their processes; the rest of the world stays up
      for p in $(printf '%s\n' "$@" | tac); do
        run_hook "$p" down || true; rm -f "$WORLD_STATE/env.d/$p.env"
      done
      world_write_env
      log "parts down: $*"
    else
      for p in $(printf '%s\n' $ALL_PARTS | tac); do run_hook "$p" down || true; done
      world_stop_all
      # forget every remembered port: the next up picks free ones, not ones others took meanwhile
      rm -rf "$(world_env_file)" "$WORLD_STATE"/env.d/*.env "$WORLD_STATE/ports"
      log "world down"
    fi ;;
  status)
    for p in $parts; do run_hook "$p" status || true; done
    world_list_procs ;;
  env)
    if [ "${1:-}" = --json ]; then world_env_json; else cat "$(world_env_file)"; fi ;;
  *)
    echo "usage: world.sh build|up|down|status|env [--json] [PART…]  (parts: $ALL_PARTS)" >&2; exit 2 ;;
esac
